// {{name}} on plain Node: `npm test`. useFakeCore() stands in for hms Core
// (store, log, auth, registry) with the host's semantics.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { read, request, useFakeCore } from '@hms/sdk/testing';
import app from './app.js';

let core;
beforeEach(() => {
  core = useFakeCore({ service: '{{name}}' });
});

test('greets and counts', async () => {
  let r = await read(await app.handle(request('GET', '/{{name}}/hello/Ada')));
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { greeting: 'Hello, Ada', count: 1 });
  r = await read(await app.handle(request('GET', '/{{name}}/hello/Ada')));
  assert.equal(r.body.count, 2);
  assert.deepEqual(core.events.at(-1), { level: 'info', message: 'greeted Ada (2 times)' });
  r = await read(await app.handle(request('POST', '/{{name}}/hello/Ada')));
  assert.deepEqual([r.status, r.headers.get('allow')], [405, 'GET']);
});
