// Where the SDK finds Core. Inside hms-host, the build's generated entry
// installs the WIT imports (`hms:core/store@0.1.0` and friends, as
// componentize-js binds them: kebab-case names in camelCase, a `result`'s
// error thrown with a `payload` `{tag, val}`, `option` none as
// `undefined`, `s64`/`u64` as BigInt) plus the global `fetch`. On plain
// Node, `useFakeCore()` from `@hms/sdk/testing` installs a stand-in of the
// same shape.

import { CoreMissingError } from './errors.js';

/**
 * @typedef {object} RawCore
 * @property {{authenticate(k: string): string, ownToken(): string, verify(t: string): any}} auth
 * @property {{logEvent(level: string, message: string): void}} logging
 * @property {{registerService(n: string, h: string, p: number): void, discoverService(n: string): any}} registry
 * @property {{get(k: string): Uint8Array | undefined, set(k: string, v: Uint8Array): void,
 *   delete(k: string): boolean, listKeys(p: string, c: string | undefined, l: number): {keys: string[], next?: string},
 *   compareAndSwap(k: string, e: Uint8Array | undefined, v: Uint8Array): boolean, increment(k: string, d: bigint): bigint}} store
 * @property {(input: Request | string, init?: RequestInit) => Promise<Response>} [fetch]
 */

/** @type {RawCore | null} */
let installed = null;

/**
 * Install the Core the SDK calls (the build does this inside hms-host).
 * @param {RawCore | null} core
 * @returns {RawCore | null} the Core installed before
 */
export function installCore(core) {
  const before = installed;
  installed = core;
  return before;
}

/** @returns {RawCore} */
export function core() {
  if (installed === null) throw new CoreMissingError();
  return installed;
}

/**
 * Run `fn`, turning a WIT error (`{payload: {tag, val}}`) into `map(payload)`.
 * @template T
 * @param {() => T} fn
 * @param {(payload: {tag: string, val?: unknown}) => Error} map
 * @returns {T}
 */
export function witCall(fn, map) {
  try {
    return fn();
  } catch (e) {
    const payload = /** @type {any} */ (e)?.payload;
    if (payload && typeof payload === 'object' && typeof payload.tag === 'string') throw map(payload);
    throw e;
  }
}
