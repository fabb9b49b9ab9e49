// auth, log, registry and call over the Core stand-in; HTTP helpers.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import {
  AuthError,
  CallFailedError,
  HttpError,
  RegistryError,
  ServiceNotFoundError,
  auth,
  bearerToken,
  call,
  error,
  joinUrl,
  json,
  log,
  pathOf,
  registry,
  service,
} from '@hms/sdk';
import { read, request, useFakeCore } from '@hms/sdk/testing';

let core;
beforeEach(() => {
  core = useFakeCore({ service: 'notice-service' });
});

test('tokens: own, verified, from API keys', () => {
  const own = auth.verify(auth.ownToken());
  assert.equal(own.subject, 'notice-service');
  assert.equal(own.keyId, 'workload');
  assert.equal(typeof own.issuedAt, 'number');
  assert.equal(own.expiresAt - own.issuedAt, 900);
  const key = core.auth.createKey('citizen-portal');
  assert.equal(auth.verify(auth.authenticate(key)).subject, 'citizen-portal');
  core.auth.revokeKey(key);
  assert.throws(() => auth.authenticate(key), (e) => e instanceof AuthError && e.kind === 'revoked');
  assert.throws(() => auth.authenticate('nope'), /invalid API key/);
  assert.throws(() => auth.verify('garbage'), (e) => e.kind === 'invalid-token' && e.reason === 'malformed token');
  assert.throws(() => auth.verify(core.auth.expired('x')), /token expired/);
});

test('verifyRequest answers 401 like identity-service', () => {
  const token = core.auth.issue('notice-admin');
  assert.equal(auth.verifyRequest(request('GET', '/', { token })).subject, 'notice-admin');
  for (const headers of [{}, { authorization: 'Basic x' }, { authorization: 'Bearer ' }]) {
    const e = assert.throws(() => auth.verifyRequest(request('GET', '/', { headers })), HttpError);
  }
  try {
    auth.verifyRequest(request('GET', '/', { headers: { authorization: 'Basic x' } }));
  } catch (e) {
    assert.equal(e.status, 401);
    assert.equal(e.message, 'missing or malformed Authorization: Bearer header');
  }
  try {
    auth.verifyRequest(request('GET', '/', { token: core.auth.expired('x') }));
  } catch (e) {
    assert.deepEqual([e.status, e.code, e.message], [401, 'unauthorized', 'token expired']);
  }
});

test('log events are recorded in order', () => {
  log.info('one');
  log.event('warn', 'two');
  log.error('three');
  log.debug('four');
  assert.deepEqual(core.events, [
    { level: 'info', message: 'one' },
    { level: 'warn', message: 'two' },
    { level: 'error', message: 'three' },
    { level: 'debug', message: 'four' },
  ]);
  assert.throws(() => log.event('fatal', 'x'), RangeError);
});

test('registry: discover and register', () => {
  assert.deepEqual(registry.discover('notice-service'), {
    name: 'notice-service',
    url: 'http://hms.test',
    host: 'hms.test',
    port: 80,
    version: 'fake',
  });
  assert.equal(registry.discover('nobody'), undefined);
  registry.register('legacy-crm', '127.0.0.1', 9000);
  assert.equal(registry.discover('legacy-crm').url, 'http://127.0.0.1:9000');
  assert.throws(() => registry.register('Bad Name', 'h', 1), (e) => e instanceof RegistryError && e.kind === 'invalid-name');
});

test('call: discovers, sends JSON with the own token, applies the caller policy', async () => {
  core.mount('report-service', (req) => json({ path: new URL(req.url).pathname, method: req.method }), {
    routes: ['/reports/...'],
  });
  const res = await call('report-service', '/reports/identity-check?x=1', { json: { id: 'C1' } });
  assert.deepEqual(await res.json(), { path: '/reports/identity-check', method: 'POST' });
  const sent = core.sent[0];
  assert.equal(sent.headers.get('content-type'), 'application/json');
  assert.equal(auth.verify(bearerToken(sent)).subject, 'notice-service');
  assert.equal(await sent.text(), '{"id":"C1"}');
  assert.equal((await call('report-service', '/reports/x')).status, 200);
  assert.equal(core.sent[1].method, 'GET');

  // A mounted Service brings its manifest and caller policy.
  const identity = service({ name: 'identity-service', routes: ['/identity/...'], callers: ['report-service'] })
    .post('/identity/verify', () => ({ status: 'verified' }));
  core.mount('identity-service', identity);
  const refused = await read(await call('identity-service', '/identity/verify', { json: { id: 'C1' } }));
  assert.equal(refused.status, 403);
  assert.deepEqual(refused.body, { code: 'forbidden', message: 'notice-service may not call identity-service' });

  await assert.rejects(call('nobody', '/x'), ServiceNotFoundError);
  registry.register('offline', '127.0.0.1', 1);
  await assert.rejects(call('offline', '/x'), (e) => e instanceof CallFailedError && e.status === 502 && e.code === 'upstream_error');
});

test('HTTP helpers', async () => {
  assert.equal(pathOf('http://h:1/a/b?c#d'), '/a/b');
  assert.equal(pathOf('http://h'), '/');
  assert.equal(pathOf('http://h?q'), '/');
  assert.equal(pathOf('/x?y'), '/x');
  assert.equal(pathOf('*'), '*');
  assert.equal(joinUrl('http://127.0.0.1:8080', '/identity/verify'), 'http://127.0.0.1:8080/identity/verify');
  assert.equal(joinUrl('https://svc.example/base/', 'identity/verify?x=1'), 'https://svc.example/base/identity/verify?x=1');
  assert.equal(joinUrl('http://h/base?q=1#frag', '/p'), 'http://h/base/p');
  const tok = (v) => bearerToken(request('GET', '/', { headers: { authorization: v } }));
  assert.equal(tok('Bearer abc'), 'abc');
  assert.equal(tok('bearer   abc  '), 'abc');
  assert.equal(tok('Basic abc'), undefined);
  assert.equal(tok('Bearer '), undefined);
  assert.equal(bearerToken(request('GET', '/')), undefined);
  const e = await read(error(404, 'not_found', 'no notice 7'));
  assert.deepEqual([e.status, e.text], [404, '{"code":"not_found","message":"no notice 7"}']);
  const j = json({ a: 1 }, { status: 201, headers: { 'x-a': 'b' } });
  assert.deepEqual([j.status, j.headers.get('x-a'), j.headers.get('content-type')], [201, 'b', 'application/json']);
  assert.throws(() => new HttpError(42, 'x', 'y'), RangeError);
});
