// The Rust router's tests (components/sdk/src/router.rs), case for case.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { HttpError, Router, json } from '@hms/sdk';
import { request } from '@hms/sdk/testing';

/** A handler answering 200 with its name and what it was given. */
const echo = (name) => (req, ctx) =>
  json({ route: name, method: req.method, named: Object.entries(ctx.params), rest: ctx.rest ?? null });

function router() {
  return new Router()
    .post('/identity/verify', echo('verify'))
    .get('/identity/citizens/{id}', echo('show'))
    .put('/identity/citizens/{id}', echo('put'))
    .get('/identity/citizens/new', echo('new'))
    .delete('/files/...', echo('files'))
    .get('/files/{name}', echo('file'))
    .route('PURGE', '/', echo('root'))
    .get('/pairs/{a}/{b}', echo('pair'));
}

async function call(method, path, r = router()) {
  const res = await r.handle(request(method, path));
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: text ? JSON.parse(text) : undefined };
}

/** For paths a URL cannot carry (``, `*`, `identity/verify`): the match alone. */
function status(method, path) {
  return router().match(method, path).status;
}

test('literal paths match exactly', async () => {
  const r = await call('POST', '/identity/verify?trace=1');
  assert.equal(r.status, 200);
  assert.equal(r.body.route, 'verify');
  assert.equal(r.body.rest, null);
  assert.equal((await call('PURGE', '/')).body.route, 'root');
  for (const path of ['/identity/verify/', '/identity', '/identity/verify/x', '/Identity/verify']) {
    assert.equal((await call('POST', path)).status, 404, path);
  }
  for (const path of ['identity/verify', '', '*']) {
    assert.equal(status('POST', path), 404, path);
  }
});

test('parameters capture one segment', async () => {
  let r = await call('GET', '/identity/citizens/C12345');
  assert.equal(r.body.route, 'show');
  assert.deepEqual(r.body.named, [['id', 'C12345']]);
  r = await call('PUT', '/identity/citizens/C%2012?x=y');
  assert.equal(r.body.route, 'put');
  assert.deepEqual(r.body.named, [['id', 'C%2012']]);
  r = await call('GET', '/pairs/1/2');
  assert.deepEqual(r.body.named, [
    ['a', '1'],
    ['b', '2'],
  ]);
  // Neither an empty segment nor two segments.
  for (const path of ['/identity/citizens/', '/identity/citizens/a/b', '/pairs//2']) {
    assert.equal((await call('GET', path)).status, 404, path);
  }
  const found = router().match('GET', '/identity/citizens/C1');
  assert.deepEqual({ ...found.params }, { id: 'C1' });
  assert.equal(found.params.other, undefined);
});

test('literals beat parameters beat rest', async () => {
  // Registered after {id}, still preferred.
  assert.equal((await call('GET', '/identity/citizens/new')).body.route, 'new');
  assert.equal((await call('GET', '/files/a')).body.route, 'file');
  // Only the rest pattern is registered for DELETE.
  const r = await call('DELETE', '/files/a');
  assert.equal(r.body.route, 'files');
  assert.equal(r.body.rest, 'a');
});

test('rest matches the prefix and below', async () => {
  for (const [path, rest] of [
    ['/files', ''],
    ['/files/', ''],
    ['/files/a', 'a'],
    ['/files/a/b/', 'a/b/'],
  ]) {
    const r = await call('DELETE', path);
    assert.equal(r.status, 200, path);
    assert.equal(r.body.rest, rest, path);
  }
  assert.equal((await call('DELETE', '/filesystem')).status, 404);

  const all = new Router().get('/...', echo('all'));
  for (const path of ['/', '/a', '/a/b']) {
    assert.equal((await call('GET', path, all)).status, 200, path);
  }
});

test('unknown paths are 404', async () => {
  const r = await call('GET', '/nowhere?x=1');
  assert.equal(r.status, 404);
  assert.equal(r.text, '{"code":"not_found","message":"no route for /nowhere"}');
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.equal((await call('GET', '/', new Router())).status, 404);
});

test('other methods are 405 with Allow', async () => {
  let r = await call('GET', '/identity/verify');
  assert.equal(r.status, 405);
  assert.deepEqual(r.body, { code: 'method_not_allowed', message: 'use POST' });
  assert.equal(r.headers.get('allow'), 'POST');

  // Registration order, each method once; HEAD is not implied by GET.
  r = await call('HEAD', '/identity/citizens/C1');
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'GET, PUT');
  assert.equal(router().match('HEAD', '/identity/citizens/C1').allow.join(', '), 'GET, PUT');
  r = await call('DELETE', '/identity/citizens/new');
  assert.equal(r.headers.get('allow'), 'GET, PUT');
  assert.equal(r.body.message, 'use GET, PUT');

  // Every pattern matching the path counts.
  r = await call('PUT', '/files/a');
  assert.equal(r.headers.get('allow'), 'DELETE, GET');
  // Methods compare by name, case-sensitively (fetch upper-cases the
  // standard ones, not others).
  assert.equal(router().match('POST', '/identity/verify').status, 200);
  assert.equal(router().match('post', '/identity/verify').status, 405);
  assert.equal(router().match('purge', '/').status, 405);
});

test('handlers may answer early with errors', async () => {
  const strict = new Router().post('/n/{id}', async (req, ctx) => {
    const body = await ctx.json();
    if (ctx.params.id === 'x') throw new HttpError(403, 'forbidden', 'not x');
    return json(body.n);
  });
  const post = (path, body) => strict.handle(request('POST', path, { body }));
  assert.equal(await (await post('/n/a', '{"n": 7}')).text(), '7');
  assert.equal((await post('/n/x', '{"n": 7}').catch((e) => e.toResponse())).status, 403);
  const bad = await post('/n/a', '{').catch((e) => e);
  assert.ok(bad instanceof HttpError);
  assert.equal(bad.status, 400);
  assert.equal(bad.code, 'bad_request');
  assert.match(bad.message, /^invalid JSON body: /);
});

test('patterns start with a slash', () => {
  assert.throws(() => new Router().get('identity', echo('x')), /must start with '\/'/);
});

test('malformed patterns throw', () => {
  for (const pattern of ['/a/{}', '/a/{id', '/a/x{id}', '/.../a', '/a/{id}/{id}', '/a/{{id}}']) {
    assert.throws(() => new Router().get(pattern, echo('x')), Error, pattern);
  }
  assert.equal(new Router().get('/', echo('x')).match('GET', '/').status, 200);
  assert.throws(() => new Router().get('/a', 'not a function'), TypeError);
});

test('what handlers return becomes a response', async () => {
  const r = new Router()
    .get('/value', () => ({ ok: true }))
    .get('/nothing', () => undefined)
    .get('/response', () => new Response('plain', { status: 202 }))
    .get('/query', (req, ctx) => ({ q: ctx.query.get('q'), path: ctx.path }));
  let res = await r.handle(request('GET', '/value'));
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/json');
  assert.equal(await res.text(), '{"ok":true}');
  res = await r.handle(request('GET', '/nothing'));
  assert.equal(res.status, 204);
  assert.equal(await res.text(), '');
  res = await r.handle(request('GET', '/response'));
  assert.equal(res.status, 202);
  assert.equal(await res.text(), 'plain');
  res = await r.handle(request('GET', '/query?q=a%20b'));
  assert.deepEqual(await res.json(), { q: 'a b', path: '/query' });
});
