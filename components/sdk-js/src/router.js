// Routing requests to handlers by method and path: the rules of the Rust
// SDK's router (components/sdk/src/router.rs), case for case.
//
// A pattern is a path of `/`-separated segments, each one of
//
// * a literal, matched exactly (`identity`);
// * a parameter `{name}`, matching any one non-empty segment, available to
//   the handler as `ctx.params.name`;
//
// optionally ending in `/...`, which matches the path so far and anything
// below it (`/files/...` matches `/files`, `/files/` and `/files/a/b`); what
// it matched is `ctx.rest`. Matching is on the path without the query,
// exactly as given: nothing is percent-decoded, and `/a/` is not `/a`.
//
// When several patterns match a path, the most specific one whose method
// matches wins: segment by segment, a literal beats a parameter, and a
// parameter beats `/...`; between equals, the first registered. A path no
// pattern matches is a 404 `not_found` (`no route for <path>`); a path some
// pattern matches, but none for the request's method, is a 405
// `method_not_allowed` with an `Allow` header naming those patterns'
// methods in the order they were registered (`use <methods>`). `HEAD` is
// not implied by `GET`, nor `OPTIONS` answered: register them if wanted.
// Methods compare by name, case-sensitively (the fetch API upper-cases the
// standard ones).

import { error, json, pathOf, readJson, readText } from './http.js';

const LITERAL = 2;
const PARAM = 1;
const REST = 0;
const EXACT = 3;

/** A parsed route pattern. */
class Pattern {
  /** @param {string} pattern */
  constructor(pattern) {
    if (typeof pattern !== 'string' || !pattern.startsWith('/')) {
      throw new Error(`route pattern ${JSON.stringify(pattern)} must start with '/'`);
    }
    let body = pattern.slice(1);
    let rest = false;
    if (body === '...') {
      body = null;
      rest = true;
    } else if (body.endsWith('/...')) {
      body = body.slice(0, -4);
      rest = true;
    }
    /** @type {{literal?: string, param?: string}[]} */
    this.segments = [];
    for (const segment of body === null ? [] : body.split('/')) {
      const name =
        segment.startsWith('{') && segment.endsWith('}') && segment.length >= 2
          ? segment.slice(1, -1)
          : null;
      if (name !== null && name !== '' && !/[{}]/.test(name)) {
        if (this.segments.some((s) => s.param === name)) {
          throw new Error(`route pattern ${JSON.stringify(pattern)} names {${name}} twice`);
        }
        this.segments.push({ param: name });
      } else if (/[{}]/.test(segment) || segment === '...') {
        throw new Error(
          `route pattern ${JSON.stringify(pattern)} has a malformed segment ${JSON.stringify(segment)}`,
        );
      } else {
        this.segments.push({ literal: segment });
      }
    }
    this.rest = rest;
    /** Specificity, compared lexicographically. */
    this.rank = this.segments.map((s) => (s.param === undefined ? LITERAL : PARAM));
    this.rank.push(rest ? REST : EXACT);
  }

  /**
   * The parameters, if the path's segments (after the leading `/`) match.
   * @param {string[]} path
   */
  matches(path) {
    const fits = this.rest ? path.length >= this.segments.length : path.length === this.segments.length;
    if (!fits) return null;
    const params = {};
    for (let i = 0; i < this.segments.length; i++) {
      const segment = this.segments[i];
      const value = path[i];
      if (segment.param === undefined) {
        if (segment.literal !== value) return null;
      } else {
        if (value === '') return null;
        Object.defineProperty(params, segment.param, {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
    }
    const rest = this.rest ? path.slice(this.segments.length).join('/') : undefined;
    return { params, rest };
  }
}

/** Lexicographic comparison of two ranks: whether `a` is more specific. */
function outranks(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    if (a[i] !== b[i]) return a[i] > b[i];
  }
  return a.length > b.length;
}

/**
 * Handlers by method and path pattern.
 *
 * A handler is `(req, ctx) => Response | value | Promise<...>`: `req` is
 * the fetch `Request`, `ctx` is `{params, rest, path, query, json(), text()}`.
 * It may return a `Response`, any other value (sent as JSON, 200), or
 * `undefined` (204, no body), and may throw an `HttpError` to answer early.
 */
export class Router {
  constructor() {
    /** @type {{method: string, pattern: Pattern, handler: Function}[]} */
    this.routes = [];
  }

  /**
   * Route `method` requests for paths matching `pattern` to `handler`.
   * Throws if the pattern is malformed.
   * @param {string} method
   * @param {string} pattern
   * @param {Function} handler
   */
  route(method, pattern, handler) {
    if (typeof method !== 'string' || method === '') throw new TypeError('a route needs a method');
    if (typeof handler !== 'function') {
      throw new TypeError(`the handler of ${method} ${pattern} is not a function`);
    }
    this.routes.push({ method, pattern: new Pattern(pattern), handler });
    return this;
  }

  get(pattern, handler) {
    return this.route('GET', pattern, handler);
  }
  head(pattern, handler) {
    return this.route('HEAD', pattern, handler);
  }
  post(pattern, handler) {
    return this.route('POST', pattern, handler);
  }
  put(pattern, handler) {
    return this.route('PUT', pattern, handler);
  }
  delete(pattern, handler) {
    return this.route('DELETE', pattern, handler);
  }
  patch(pattern, handler) {
    return this.route('PATCH', pattern, handler);
  }

  /**
   * What a request for `method` and `path` (the path alone, no query)
   * finds: a route, a 404 or a 405 with the allowed methods.
   * @param {string} method
   * @param {string} path
   */
  match(method, path) {
    // A path not in origin form (e.g. `*`) matches nothing.
    const segments = path.startsWith('/') ? path.slice(1).split('/') : null;
    let best = null;
    const allowed = [];
    for (const route of this.routes) {
      const found = segments === null ? null : route.pattern.matches(segments);
      if (found === null) continue;
      if (!allowed.includes(route.method)) allowed.push(route.method);
      const better = best === null || outranks(route.pattern.rank, best.route.pattern.rank);
      if (route.method === method && better) best = { route, ...found };
    }
    if (best !== null) {
      return { status: 200, handler: best.route.handler, params: best.params, rest: best.rest };
    }
    if (allowed.length === 0) return { status: 404 };
    return { status: 405, allow: allowed };
  }

  /**
   * Answer `req` with the handler of the best matching route, or with the
   * 404 or 405. Errors the handler throws are thrown on: `service()` turns
   * them into responses.
   * @param {Request} req
   * @returns {Promise<Response>}
   */
  async handle(req) {
    const path = pathOf(req.url);
    const found = this.match(req.method, path);
    if (found.status === 404) return error(404, 'not_found', `no route for ${path}`);
    if (found.status === 405) {
      const allow = found.allow.join(', ');
      return json({ code: 'method_not_allowed', message: `use ${allow}` }, { status: 405, headers: { allow } });
    }
    const ctx = {
      params: found.params,
      rest: found.rest,
      path,
      get query() {
        return new URL(req.url, 'http://localhost').searchParams;
      },
      json: () => readJson(req),
      text: () => readText(req),
    };
    return toResponse(await found.handler(req, ctx));
  }
}

/**
 * What a handler returned, as a response: a `Response` as it is,
 * `undefined` as 204, anything else as JSON 200.
 * @param {unknown} value
 */
export function toResponse(value) {
  if (value instanceof Response) return value;
  if (value === undefined) return new Response(null, { status: 204 });
  const body = JSON.stringify(value);
  return new Response(body, { status: 200, headers: { 'content-type': 'application/json' } });
}
