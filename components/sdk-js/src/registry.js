// Core service registry (`hms:core/registry`): discovery by name.

import { core, witCall } from './core.js';
import { RegistryError } from './errors.js';

/**
 * @typedef {object} Endpoint
 * @property {string} name
 * @property {string} url base URL to send requests to
 * @property {string} host
 * @property {number} port
 * @property {string} version
 */

/**
 * Where a service is served, or `undefined` if no such service is registered.
 * @param {string} name
 * @returns {Endpoint | undefined}
 */
export function discover(name) {
  const e = core().registry.discoverService(name);
  if (e === undefined || e === null) return undefined;
  return { name: e.name, url: e.url, host: e.host, port: Number(e.port), version: e.version };
}

/**
 * Register an external (non-wasm) service under a name; RegistryError if refused.
 * @param {string} name
 * @param {string} host
 * @param {number} port
 */
export function register(name, host, port) {
  witCall(
    () => core().registry.registerService(name, host, port),
    (p) => new RegistryError(/** @type {any} */ (p.tag), String(p.val)),
  );
}
