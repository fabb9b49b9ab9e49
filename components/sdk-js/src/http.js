// Fetch-style helpers: JSON responses, the error shape, reading bodies.

import { HttpError } from './errors.js';

/**
 * `value` as a JSON response with `content-type: application/json`.
 * @param {unknown} value
 * @param {number | ResponseInit} [init] a status, or a ResponseInit
 * @returns {Response}
 */
export function json(value, init) {
  const options = typeof init === 'number' ? { status: init } : { ...init };
  const headers = new Headers(options.headers);
  headers.set('content-type', 'application/json');
  const body = JSON.stringify(value === undefined ? null : value);
  return new Response(body, { ...options, headers });
}

/**
 * The project-wide error shape: `{"code":"<code>","message":"<message>"}`.
 * @param {number} status
 * @param {string} code
 * @param {string} message
 * @returns {Response}
 */
export function error(status, code, message) {
  return json({ code, message: String(message) }, status);
}

/**
 * The path of a URL (absolute or a path with query), without query or
 * fragment, exactly as it stands in the string: nothing is decoded.
 * @param {string} url
 */
export function pathOf(url) {
  let rest = url;
  const scheme = rest.indexOf('://');
  if (scheme >= 0 && /^[A-Za-z][A-Za-z0-9+.-]*$/.test(rest.slice(0, scheme))) {
    rest = rest.slice(scheme + 3);
    const slash = rest.search(/[/?#]/);
    rest = slash < 0 ? '/' : rest.slice(slash);
    if (!rest.startsWith('/')) rest = '/' + rest;
  }
  const end = rest.search(/[?#]/);
  return end < 0 ? rest : rest.slice(0, end);
}

/**
 * The token of an `Authorization: Bearer <token>` header, if there is one.
 * @param {Request} req
 * @returns {string | undefined}
 */
export function bearerToken(req) {
  const value = (req.headers.get('authorization') ?? '').trim();
  const space = value.indexOf(' ');
  if (space < 0) return undefined;
  const scheme = value.slice(0, space);
  const token = value.slice(space + 1).trim();
  return scheme.toLowerCase() === 'bearer' && token !== '' ? token : undefined;
}

/**
 * The request body as text. A body that cannot be read is a 400.
 * @param {Request} req
 */
export async function readText(req) {
  try {
    return await req.text();
  } catch (e) {
    throw new HttpError(400, 'bad_request', `cannot read request body: ${messageOf(e)}`, {
      cause: e,
    });
  }
}

/**
 * The request body parsed as JSON; invalid JSON is a 400 `bad_request`
 * `invalid JSON body: ...`.
 * @param {Request} req
 */
export async function readJson(req) {
  const text = await readText(req);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, 'bad_request', `invalid JSON body: ${messageOf(e)}`, { cause: e });
  }
}

function messageOf(e) {
  return e instanceof Error ? e.message : String(e);
}
