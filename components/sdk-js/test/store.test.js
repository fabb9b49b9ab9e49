// The store wrappers over the Core stand-in, whose semantics are the host's
// (host/src/core/store: limits, byte order, paging, increment, CAS).

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import {
  InvalidKeyError,
  NotANumberError,
  QuotaExceededError,
  StoreDecodeError,
  StoreError,
  StoreUnavailableError,
  ValueTooLargeError,
  store,
} from '@hms/sdk';
import { useFakeCore } from '@hms/sdk/testing';

let core;
beforeEach(() => {
  core = useFakeCore({ service: 'svc' });
});

test('get, set, delete; absent is undefined', () => {
  assert.equal(store.get('k'), undefined);
  assert.equal(store.getText('k'), undefined);
  store.set('k', 'héllo');
  assert.deepEqual(store.get('k'), new TextEncoder().encode('héllo'));
  assert.equal(store.getText('k'), 'héllo');
  store.set('b', new Uint8Array([0, 255]));
  assert.deepEqual([...store.get('b')], [0, 255]);
  assert.equal(store.delete('k'), true);
  assert.equal(store.delete('k'), false);
  assert.equal(store.get('k'), undefined);
  assert.throws(() => store.set('k', 42), TypeError);
});

test('JSON values', () => {
  assert.equal(store.getJson('j'), undefined);
  store.setJson('j', { a: [1, 'x'], n: null });
  assert.deepEqual(store.getJson('j'), { a: [1, 'x'], n: null });
  assert.equal(store.getText('j'), '{"a":[1,"x"],"n":null}');
  store.setJson('null', null);
  assert.equal(store.getJson('null'), null);
  store.set('bad', '{not json');
  const e = assert.throws(() => store.getJson('bad'), StoreDecodeError);
  assert.throws(() => store.getJson('bad'), /the value at "bad" is not valid JSON/);
  assert.throws(() => store.setJson('u', undefined), TypeError);
});

test('increment returns a number and follows the host rules', () => {
  assert.equal(store.increment('n'), 1);
  assert.equal(store.increment('n', 41), 42);
  assert.equal(typeof store.increment('n', 0), 'number');
  assert.equal(store.increment('new', -3), -3);
  assert.equal(store.getText('n'), '42');
  store.set('padded', ' +7 ');
  assert.equal(store.increment('padded'), 8);
  store.set('text', 'abc');
  assert.throws(() => store.increment('text'), NotANumberError);
  store.set('max', '9223372036854775807');
  assert.throws(() => store.increment('max'), NotANumberError);
  assert.equal(store.incrementBig('max', -1n), 9223372036854775806n);
  assert.throws(() => store.increment('n', 0.5), RangeError);
});

test('compare-and-swap', () => {
  assert.equal(store.compareAndSwap('k', undefined, '1'), true);
  assert.equal(store.compareAndSwap('k', null, '2'), false);
  assert.equal(store.compareAndSwap('k', '9', '2'), false);
  assert.equal(store.compareAndSwap('k', '1', '2'), true);
  assert.equal(store.getText('k'), '2');
  assert.equal(store.compareAndSwap('k', new TextEncoder().encode('2'), '3'), true);
  assert.equal(store.getText('k'), '3');
});

test('keys are listed by prefix in pages, in byte order', () => {
  for (const k of ['a', 'c/1', 'c/2', 'c/3', 'c0', 'd']) store.set(k, 'x');
  const p = store.keys('c/', { limit: 2 });
  assert.deepEqual(p, { keys: ['c/1', 'c/2'], next: 'c/2' });
  const p2 = store.keys('c/', { cursor: p.next, limit: 2 });
  assert.deepEqual(p2, { keys: ['c/3'], next: undefined });
  assert.equal(store.keys('').keys.length, 6);
  assert.equal(store.keys('', { limit: 1000 }).keys.length, 6);
  assert.deepEqual(store.keys('zz').keys, []);
  // A cursor before the prefix cannot widen the listing.
  assert.equal(store.keys('c/', { cursor: 'a', limit: 10 }).keys.length, 3);
  assert.throws(() => store.keys('', { limit: 0 }), InvalidKeyError);
  assert.throws(() => store.keys('', { limit: 1001 }), /pages hold 1 to 1000 keys/);
  assert.deepEqual([...store.allKeys('c', { pageSize: 1 })], ['c/1', 'c/2', 'c/3', 'c0']);
  // Byte order (UTF-8), not UTF-16 order: U+FFFD sorts before U+1F600.
  store.set('u/\u{1F600}', 'x');
  store.set('u/\uFFFD', 'x');
  assert.deepEqual(store.keys('u/').keys, ['u/\uFFFD', 'u/\u{1F600}']);
});

test('limits and errors are typed', () => {
  core = useFakeCore({ service: 'svc', store: { maxKeyBytes: 32, maxValueBytes: 64, quota: 100 } });
  assert.throws(() => store.set('', ''), (e) => e instanceof InvalidKeyError && e.reason === 'empty');
  assert.throws(() => store.get('k'.repeat(33)), /invalid key: 33 bytes; at most 32 are allowed/);
  const tooLarge = assert.throws(() => store.set('k', new Uint8Array(65)), ValueTooLargeError);
  try {
    store.set('k', new Uint8Array(65));
  } catch (e) {
    assert.equal(e.limit, 64);
    assert.equal(e.kind, 'value-too-large');
    assert.equal(e.toHttpError().status, 413);
  }
  store.set('a', new Uint8Array(60)); // 61 bytes
  assert.throws(() => store.set('b', new Uint8Array(60)), (e) => e instanceof QuotaExceededError && e.quota === 100);
  // Replacing a value counts only the difference.
  store.set('a', new Uint8Array(64));
  assert.equal(store.delete('a'), true);
  store.set('b', new Uint8Array(60));

  core.store.unavailable = 'disk on fire';
  try {
    store.keys('');
    assert.fail('should throw');
  } catch (e) {
    assert.ok(e instanceof StoreUnavailableError && e instanceof StoreError);
    assert.equal(e.message, 'store unavailable: disk on fire');
    const http = e.toHttpError();
    assert.deepEqual([http.status, http.code], [503, 'store_unavailable']);
  }
  assert.equal(new NotANumberError().toHttpError().status, 500);
});

test('without Core, a clear error', async () => {
  const { installCore, CoreMissingError } = await import('@hms/sdk');
  installCore(null);
  assert.throws(() => store.get('k'), CoreMissingError);
  assert.throws(() => store.get('k'), /useFakeCore/);
});
