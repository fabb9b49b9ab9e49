// service(): the manifest, and what becomes of a handler's failure.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { HttpError, InvalidKeyError, Service, call, service, store } from '@hms/sdk';
import { read, request, useFakeCore } from '@hms/sdk/testing';
import { answer } from '../src/runtime.js';

let core;
beforeEach(() => {
  core = useFakeCore({ service: 'greeter' });
});

function app() {
  return service({ name: 'greeter', routes: ['/greet/...'], callers: ['report-service'] })
    .get('/greet/boom', () => {
      throw new TypeError('the secret detail');
    })
    .get('/greet/async-boom', async () => {
      await null;
      null.x;
    })
    .get('/greet/string', () => {
      throw 'a string';
    })
    .get('/greet/teapot', () => {
      throw new HttpError(418, 'teapot', 'short and stout', { headers: { 'retry-after': '5' } });
    })
    .get('/greet/store', () => store.get(''))
    .get('/greet/call', () => call('nobody', '/x'))
    .post('/greet/echo', async (req, ctx) => ({ got: await ctx.json() }));
}

test('the manifest', () => {
  const a = app();
  assert.ok(a instanceof Service);
  assert.deepEqual(a.describe(), { name: 'greeter', routes: ['/greet/...'] });
  assert.deepEqual(a.callers(), ['report-service']);
  const open = service({ name: 'notice-board' });
  assert.deepEqual(open.describe(), { name: 'notice-board', routes: ['/notice-board/...'] });
  assert.equal(open.callers(), undefined);
  for (const bad of [{ name: 'Bad' }, { name: '' }, { name: 'a'.repeat(65) }, {}]) {
    assert.throws(() => service(bad), /service name/);
  }
  assert.throws(() => service({ name: 'x', routes: ['/_hms/x'] }), /_hms/);
  assert.throws(() => service({ name: 'x', routes: ['x/...'] }), /must start with/);
  assert.throws(() => service({ name: 'x', routes: [] }), /non-empty/);
  assert.throws(() => service({ name: 'x', callers: ['Not A Name'] }), /callers/);
});

test('an uncaught exception is a plain 500 and exactly one error event with the stack', async () => {
  for (const path of ['/greet/boom', '/greet/async-boom', '/greet/string']) {
    core.logging.clear();
    const r = await read(await app().handle(request('GET', `${path}?x=1`)));
    assert.equal(r.status, 500, path);
    assert.equal(r.text, '{"code":"internal","message":"internal error"}', path);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(core.events.length, 1, path);
    const [event] = core.events;
    assert.equal(event.level, 'error');
    assert.ok(event.message.startsWith(`uncaught exception in GET ${path}: `), event.message);
  }
  core.logging.clear();
  await app().handle(request('GET', '/greet/boom'));
  const message = core.events[0].message;
  assert.match(message, /TypeError: the secret detail/);
  assert.match(message, /service\.test\.js:\d+/, 'the stack is in the event');
});

test('an HttpError is its response, and nothing is logged', async () => {
  const r = await read(await app().handle(request('GET', '/greet/teapot')));
  assert.equal(r.status, 418);
  assert.deepEqual(r.body, { code: 'teapot', message: 'short and stout' });
  assert.equal(r.headers.get('retry-after'), '5');
  assert.equal(core.events.length, 0);
});

test('a Core error is an exception; a call to a missing service a 503', async () => {
  let r = await read(await app().handle(request('GET', '/greet/store')));
  assert.equal(r.status, 500);
  assert.equal(core.events.length, 1);
  assert.match(core.events[0].message, /InvalidKeyError: invalid key: empty/);
  r = await read(await app().handle(request('GET', '/greet/call')));
  assert.equal(r.status, 503);
  assert.deepEqual(r.body, { code: 'dependency_unavailable', message: 'nobody is not registered' });
  assert.equal(core.events.length, 1);
  assert.ok(new InvalidKeyError('x') instanceof Error);
});

test('bad JSON bodies are 400, as in the Rust SDK', async () => {
  const r = await read(await app().handle(request('POST', '/greet/echo', { body: '{' })));
  assert.equal(r.status, 400);
  assert.equal(r.body.code, 'bad_request');
  assert.match(r.body.message, /^invalid JSON body: /);
  const ok = await read(await app().handle(request('POST', '/greet/echo', { json: { a: 1 } })));
  assert.deepEqual(ok.body, { got: { a: 1 } });
  assert.equal(core.events.length, 0);
});

test('the component glue reads the body first; a body that cannot be read is a 400 without an event', async () => {
  const ok = await read(await answer(app(), request('POST', '/greet/echo', { json: [1, 2] })));
  assert.deepEqual(ok.body, { got: [1, 2] });
  const broken = new ReadableStream({
    pull(controller) {
      controller.error(new Error('client went away'));
    },
  });
  const req = new Request('http://hms.test/greet/echo', { method: 'POST', body: broken, duplex: 'half' });
  const r = await read(await answer(app(), req));
  assert.equal(r.status, 400);
  assert.deepEqual(r.body, { code: 'bad_request', message: 'cannot read request body: client went away' });
  assert.equal(core.events.length, 0);
  const notFound = await read(await answer(app(), request('GET', '/nope')));
  assert.equal(notFound.text, '{"code":"not_found","message":"no route for /nope"}');
});
