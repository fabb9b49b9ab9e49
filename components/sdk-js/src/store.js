// The service's private durable store (`hms:core/store`). Keys are
// strings; values are bytes (a string is stored as UTF-8; JSON text is the
// convention). Absent is `undefined`. Every failure is a `StoreError`
// subclass (InvalidKeyError, ValueTooLargeError, QuotaExceededError,
// NotANumberError, StoreUnavailableError; StoreDecodeError from getJson).

import { core, witCall } from './core.js';
import { StoreDecodeError, storeErrorOf } from './errors.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** @param {Uint8Array | string} value */
function bytes(value) {
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  throw new TypeError('a store value is a Uint8Array or a string');
}

/** @param {string} key */
function checkKey(key) {
  if (typeof key !== 'string') throw new TypeError('a store key is a string');
  return key;
}

const call = (fn) => witCall(fn, storeErrorOf);

/**
 * The value at `key`, or `undefined`.
 * @param {string} key
 * @returns {Uint8Array | undefined}
 */
export function get(key) {
  checkKey(key);
  return call(() => core().store.get(key)) ?? undefined;
}

/**
 * The value at `key` as UTF-8 text, or `undefined`.
 * @param {string} key
 */
export function getText(key) {
  const value = get(key);
  return value === undefined ? undefined : decoder.decode(value);
}

/**
 * Set `key` to `value` (bytes, or a string stored as UTF-8); durable when
 * this returns.
 * @param {string} key
 * @param {Uint8Array | string} value
 */
export function set(key, value) {
  checkKey(key);
  const data = bytes(value);
  call(() => core().store.set(key, data));
}

/**
 * Remove `key`; whether it was there.
 * @param {string} key
 */
function remove(key) {
  checkKey(key);
  return call(() => core().store.delete(key));
}
export { remove as delete };

/**
 * One page of the keys starting with `prefix`, in ascending (byte) order.
 * `next` is the cursor of the following page, `undefined` on the last.
 * @param {string} [prefix]
 * @param {{cursor?: string, limit?: number}} [options] limit 1-1000, default 100
 * @returns {{keys: string[], next: string | undefined}}
 */
export function keys(prefix = '', { cursor, limit = 100 } = {}) {
  if (typeof prefix !== 'string') throw new TypeError('a key prefix is a string');
  if (!Number.isInteger(limit) || limit < 0 || limit > 0xffffffff) {
    throw new RangeError(`limit must be an integer 1-1000, not ${limit}`);
  }
  const page = call(() => core().store.listKeys(prefix, cursor ?? undefined, limit));
  return { keys: [...page.keys], next: page.next ?? undefined };
}

/**
 * Every key starting with `prefix`, page after page.
 * @param {string} [prefix]
 * @param {{pageSize?: number}} [options]
 * @returns {Generator<string>}
 */
export function* allKeys(prefix = '', { pageSize = 1000 } = {}) {
  let cursor;
  do {
    const page = keys(prefix, { cursor, limit: pageSize });
    yield* page.keys;
    cursor = page.next;
  } while (cursor !== undefined);
}

/**
 * Set `key` to `value` only if its value is `expected` (`undefined` or
 * `null`: only if absent); whether it was set. Atomic.
 * @param {string} key
 * @param {Uint8Array | string | null | undefined} expected
 * @param {Uint8Array | string} value
 */
export function compareAndSwap(key, expected, value) {
  checkKey(key);
  const want = expected === undefined || expected === null ? undefined : bytes(expected);
  const data = bytes(value);
  return call(() => core().store.compareAndSwap(key, want, data));
}

/**
 * Add `delta` to the decimal integer at `key` (absent counts as 0), store
 * and return the sum, atomically. The sum is a number; past
 * Number.MAX_SAFE_INTEGER use `incrementBig`.
 * @param {string} key
 * @param {number | bigint} [delta]
 * @returns {number}
 */
export function increment(key, delta = 1) {
  return Number(incrementBig(key, delta));
}

/**
 * `increment` with the sum as a BigInt (the full s64 range).
 * @param {string} key
 * @param {number | bigint} [delta]
 * @returns {bigint}
 */
export function incrementBig(key, delta = 1n) {
  checkKey(key);
  if (typeof delta === 'number' && !Number.isSafeInteger(delta)) {
    throw new RangeError(`delta must be a safe integer, not ${delta}`);
  }
  const d = BigInt(delta);
  return BigInt(call(() => core().store.increment(key, d)));
}

/**
 * The value at `key` parsed as JSON, or `undefined` if there is none. A
 * value that is not JSON throws StoreDecodeError.
 * @param {string} key
 * @returns {any}
 */
export function getJson(key) {
  const text = getText(key);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new StoreDecodeError(key, /** @type {Error} */ (e));
  }
}

/**
 * Set `key` to `value` as JSON text.
 * @param {string} key
 * @param {unknown} value
 */
export function setJson(key, value) {
  const text = JSON.stringify(value);
  if (text === undefined) throw new TypeError(`cannot store ${typeof value} as JSON`);
  set(key, text);
}
