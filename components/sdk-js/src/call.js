// Calls to other services: discover the target in the registry, send the
// request to its URL with this service's own token. The host dispatches a
// call to a service on the same host in-process and applies the callee's
// caller policy (a refused caller gets the callee's 403, as a response).

import { core } from './core.js';
import { CallFailedError, ServiceNotFoundError } from './errors.js';
import { ownToken } from './auth.js';
import { discover } from './registry.js';

/**
 * Call `service` at `path` (e.g. `/reports/identity-check`, may carry a
 * query). With `json`, the body is that value as JSON and the method
 * defaults to POST; else GET. `Authorization: Bearer <own token>` is added
 * unless `headers` has one. Any HTTP status is a response; a service that
 * is not registered throws ServiceNotFoundError (503), a call that gets no
 * response CallFailedError (502).
 * @param {string} service
 * @param {string} path
 * @param {{method?: string, json?: unknown, body?: BodyInit, headers?: HeadersInit}} [options]
 * @returns {Promise<Response>}
 */
export async function call(service, path, options = {}) {
  const endpoint = discover(service);
  if (endpoint === undefined) throw new ServiceNotFoundError(service);
  const headers = new Headers(options.headers);
  let body = options.body;
  if (options.json !== undefined) {
    body = JSON.stringify(options.json);
    if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  }
  if (!headers.has('authorization')) headers.set('authorization', `Bearer ${ownToken()}`);
  const method = options.method ?? (body === undefined ? 'GET' : 'POST');
  const url = joinUrl(endpoint.url, path);
  const send = core().fetch ?? globalThis.fetch;
  try {
    return await send(url, { method, headers, body });
  } catch (e) {
    throw new CallFailedError(service, e);
  }
}

/**
 * A base URL (whose path is kept as a prefix) joined with a path.
 * @param {string} base
 * @param {string} path
 */
export function joinUrl(base, path) {
  const cut = base.search(/[?#]/);
  const root = (cut < 0 ? base : base.slice(0, cut)).replace(/\/+$/, '');
  return `${root}/${path.replace(/^\/+/, '')}`;
}
