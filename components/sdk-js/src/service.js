// A service: its manifest (name, routes, callers) and its router, with the
// one place where a handler's failure becomes a response.

import { core } from './core.js';
import { HttpError } from './errors.js';
import { error, pathOf } from './http.js';
import { Router } from './router.js';

const NAME = /^[a-z0-9-]{1,64}$/;

/**
 * A service: a Router plus the manifest the host reads at load.
 * Build one with `service({...})` and `export default` it from app.js.
 */
export class Service extends Router {
  /**
   * @param {{name: string, routes?: string[], callers?: string[] | null}} options
   */
  constructor({ name, routes, callers } = /** @type {any} */ ({})) {
    super();
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new Error(`a service name is 1-64 characters of a-z, 0-9 and '-', not ${JSON.stringify(name)}`);
    }
    const list = routes ?? [`/${name}/...`];
    if (!Array.isArray(list) || list.length === 0) {
      throw new Error(`service ${name}: routes is a non-empty list of '/exact/path' or '/prefix/...'`);
    }
    for (const route of list) {
      if (typeof route !== 'string' || !route.startsWith('/') || route === '/_hms' || route.startsWith('/_hms/')) {
        throw new Error(`service ${name}: route ${JSON.stringify(route)} must start with '/' and not be under /_hms`);
      }
    }
    if (callers !== undefined && callers !== null) {
      if (!Array.isArray(callers) || callers.some((c) => typeof c !== 'string' || !NAME.test(c))) {
        throw new Error(`service ${name}: callers is a list of service names, or null for any`);
      }
    }
    this.name = name;
    /** The host-level routes of the manifest. */
    this.prefixes = [...list];
    this.allowedCallers = callers == null ? undefined : [...callers];
  }

  /** The manifest's `describe()`. */
  describe() {
    return { name: this.name, routes: [...this.prefixes] };
  }

  /** The manifest's `callers()`: `undefined` lets every service call. */
  callers() {
    return this.allowedCallers === undefined ? undefined : [...this.allowedCallers];
  }

  /**
   * Answer one request; never throws. An HttpError becomes its JSON
   * response; any other exception a 500 `internal` with no details, and
   * one error event (with the stack) in the audit log.
   * @param {Request} req
   * @returns {Promise<Response>}
   */
  async handle(req) {
    try {
      return await super.handle(req);
    } catch (e) {
      return failed(req, e);
    }
  }
}

/**
 * The answer to a handler's exception `e`.
 * @param {Request} req
 * @param {unknown} e
 */
export function failed(req, e) {
  if (e instanceof HttpError) {
    try {
      return e.toResponse();
    } catch (invalid) {
      e = invalid; // e.g. a header wasi:http refuses: report it as a bug
    }
  }
  try {
    const what = e instanceof Error ? `${e.name}: ${e.message}` : `thrown value: ${safeString(e)}`;
    const stack = e instanceof Error && typeof e.stack === 'string' && e.stack !== '' ? `\n${e.stack}` : '';
    core().logging.logEvent('error', `uncaught exception in ${req.method} ${pathOf(req.url)}: ${what}${stack}`);
  } catch {
    // Nowhere to report it; the client still gets its 500.
  }
  return error(500, 'internal', 'internal error');
}

function safeString(value) {
  try {
    return typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * A service with this manifest; add handlers with `.get()`, `.post()`...
 * `routes` defaults to `['/<name>/...']` (as the host serves a plain
 * wasi:http component); `callers` to any service (`null`).
 * @param {{name: string, routes?: string[], callers?: string[] | null}} options
 */
export function service(options) {
  return new Service(options);
}
