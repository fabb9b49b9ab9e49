// The glue of a built component: the generated entry calls `serve` with
// the WIT imports. It installs them as Core, answers StarlingMonkey's
// fetch events (the wasi:http/incoming-handler export) with the service,
// and returns the `hms:core/manifest` export.

import { installCore } from './core.js';
import { error } from './http.js';
import { failed } from './service.js';

/**
 * @param {import('./service.js').Service} app the default export of app.js
 * @param {{auth: any, logging: any, registry: any, store: any}} bindings
 */
export function serve(app, bindings) {
  if (!app || typeof app.handle !== 'function' || typeof app.describe !== 'function') {
    throw new Error("app.js must `export default service({...})` (from '@hms/sdk')");
  }
  installCore({ ...bindings, fetch: (input, init) => fetch(input, init) });
  addEventListener('fetch', (event) => event.respondWith(answer(app, event.request)));
  return {
    describe: () => app.describe(),
    callers: () => app.callers(),
  };
}

/**
 * Read the whole body first, as the Rust SDK does: a body that cannot be
 * read (the client went away, or sent more than the host allows) is a 400
 * and no event. Never rejects.
 * @param {any} app
 * @param {Request} request
 */
export async function answer(app, request) {
  const method = request.method;
  const hasBody = method !== 'GET' && method !== 'HEAD';
  let body;
  try {
    body = hasBody ? await request.arrayBuffer() : undefined;
  } catch (e) {
    return error(400, 'bad_request', `cannot read request body: ${e instanceof Error ? e.message : e}`);
  }
  let req = request;
  try {
    if (hasBody) req = new Request(request.url, { method, headers: request.headers, body });
    return await app.handle(req);
  } catch (e) {
    return failed(req, e);
  }
}
