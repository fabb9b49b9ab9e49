// notice-service on plain Node, with the Core stand-in of @hms/sdk/testing.

import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { json } from '@hms/sdk';
import { read, request, useFakeCore } from '@hms/sdk/testing';
import app, { key } from '../app.js';

let core;
let clerk;
beforeEach(() => {
  core = useFakeCore({ service: 'notice-service' });
  clerk = core.auth.issue('records-clerk');
  // report-service as the seed has it: C12345 verified, anything else not on record.
  core.mount(
    'report-service',
    async (req) => {
      const { id } = await req.json();
      if (id === 'bad id') return json({ code: 'bad_request', message: 'identity-service refused the ID' }, 400);
      return json({ report: id === 'C12345' ? 'ID C12345 is verified' : `ID ${id} is not on record` });
    },
    { routes: ['/reports/...'] },
  );
});

const send = async (method, path, options) => read(await app.handle(request(method, path, options)));
const postNotice = (title, extra = {}) => send('POST', '/notices', { token: clerk, json: { title, body: `about ${title}`, ...extra } });

test('the manifest', () => {
  assert.deepEqual(app.describe(), { name: 'notice-service', routes: ['/notices/...'] });
  assert.equal(app.callers(), undefined);
});

test('posting needs a valid token and a title', async () => {
  let r = await send('POST', '/notices', { json: { title: 'x' } });
  assert.equal(r.status, 401);
  assert.equal(r.body.message, 'missing or malformed Authorization: Bearer header');
  r = await send('POST', '/notices', { token: core.auth.expired('x'), json: { title: 'x' } });
  assert.deepEqual(r.body, { code: 'unauthorized', message: 'token expired' });
  r = await send('POST', '/notices', { token: clerk, json: { title: '' } });
  assert.equal(r.status, 400);
  r = await send('POST', '/notices', { token: clerk, body: '{' });
  assert.equal(r.status, 400);
  assert.match(r.body.message, /^invalid JSON body/);
  assert.equal(core.events.length, 0);
});

test('a notice is posted, stored, logged and read back', async () => {
  const r = await postNotice('Office closed on Friday');
  assert.equal(r.status, 201);
  assert.equal(r.body.id, 1);
  assert.equal(r.body.author, 'records-clerk');
  assert.equal(r.body.version, 1);
  assert.ok(!('recipient' in r.body));
  assert.deepEqual(core.store.dump()['seq/notice'], '1');
  assert.deepEqual(JSON.parse(core.store.dump()[key(1)]), r.body);
  assert.deepEqual(core.events, [{ level: 'info', message: 'Notice 1 posted by records-clerk' }]);
  const again = await send('GET', '/notices/1');
  assert.deepEqual(again.body, r.body);
  assert.deepEqual((await send('GET', '/notices/stats')).body, { posted: 1 });
});

test('an addressed notice asks report-service, with this service token', async () => {
  const r = await postNotice('Your ID card is ready', { citizen_id: 'C12345' });
  assert.equal(r.status, 201);
  assert.deepEqual(r.body.recipient, { citizen_id: 'C12345', report: 'ID C12345 is verified' });
  const sent = core.sent[0];
  assert.equal(new URL(sent.url).pathname, '/reports/identity-check');
  assert.equal(core.auth.verify(sent.headers.get('authorization').slice(7)).subject, 'notice-service');
  assert.equal(core.events.at(-1).message, 'Notice 1 posted by records-clerk to C12345');

  const refused = await postNotice('x', { citizen_id: 'bad id' });
  assert.equal(refused.status, 400);
  assert.match(refused.body.message, /report-service refused the ID/);
});

test('report-service missing is a 503, nothing stored', async () => {
  core = useFakeCore({ service: 'notice-service' });
  const r = await send('POST', '/notices', { token: core.auth.issue('a'), json: { title: 't', citizen_id: 'C1' } });
  assert.equal(r.status, 503);
  assert.deepEqual(r.body, { code: 'dependency_unavailable', message: 'report-service is not registered' });
  assert.deepEqual(core.store.dump(), {});
});

test('notices are listed in pages, oldest first', async () => {
  for (let i = 1; i <= 5; i++) await postNotice(`notice ${i}`);
  let r = await send('GET', '/notices?limit=2');
  assert.deepEqual(r.body.notices.map((n) => n.id), [1, 2]);
  assert.equal(r.body.next, key(2));
  r = await send('GET', `/notices?limit=2&cursor=${encodeURIComponent(r.body.next)}`);
  assert.deepEqual(r.body.notices.map((n) => n.id), [3, 4]);
  r = await send('GET', `/notices?limit=2&cursor=${encodeURIComponent(r.body.next)}`);
  assert.deepEqual(r.body.notices.map((n) => n.id), [5]);
  assert.equal(r.body.next, null);
  assert.equal((await send('GET', '/notices')).body.notices.length, 5);
  for (const limit of ['0', '101', 'x', '1.5']) {
    assert.equal((await send('GET', `/notices?limit=${limit}`)).status, 400, limit);
  }
});

test('authors and admins change and remove notices; others may not', async () => {
  await postNotice('draft');
  const other = core.auth.issue('someone-else');
  let r = await send('PATCH', '/notices/1', { token: other, json: { title: 'hijacked' } });
  assert.deepEqual([r.status, r.body.code], [403, 'forbidden']);
  r = await send('PATCH', '/notices/1', { token: clerk, json: { title: 'final' } });
  assert.deepEqual([r.status, r.body.title, r.body.version, r.body.body], [200, 'final', 2, 'about draft']);
  r = await send('PATCH', '/notices/1', { token: core.auth.issue('notice-admin'), json: { body: 'edited' } });
  assert.deepEqual([r.body.title, r.body.body, r.body.version], ['final', 'edited', 3]);
  r = await send('DELETE', '/notices/1', { token: other });
  assert.equal(r.status, 403);
  r = await send('DELETE', '/notices/1', { token: clerk });
  assert.equal(r.status, 204);
  assert.equal((await send('GET', '/notices/1')).status, 404);
  assert.equal((await send('DELETE', '/notices/1', { token: clerk })).status, 404);
  assert.equal(core.events.at(-1).message, 'Notice 1 removed by records-clerk');
});

test('routing: 404, 405 with Allow, bad ids', async () => {
  let r = await send('GET', '/notices/7');
  assert.deepEqual([r.status, r.text], [404, '{"code":"not_found","message":"no notice 7"}']);
  r = await send('PUT', '/notices/7');
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'GET, PATCH, DELETE');
  r = await send('DELETE', '/notices');
  assert.deepEqual([r.status, r.headers.get('allow')], [405, 'GET, POST']);
  r = await send('GET', '/notices/a/b');
  assert.deepEqual(r.body, { code: 'not_found', message: 'no route for /notices/a/b' });
  for (const id of ['0', 'abc', '12345678901']) {
    assert.equal((await send('GET', `/notices/${id}`)).status, 400, id);
  }
});

test('a corrupt record is a 500 with one error event, and no detail for the client', async () => {
  core.store.set(key(3), new TextEncoder().encode('{"id": 3, "title": "cut off'));
  const r = await send('GET', '/notices/3');
  assert.equal(r.status, 500);
  assert.deepEqual(r.body, { code: 'internal', message: 'internal error' });
  assert.equal(core.events.length, 1);
  assert.equal(core.events[0].level, 'error');
  assert.match(core.events[0].message, /^uncaught exception in GET \/notices\/3: StoreDecodeError: the value at "notice\/0000000003" is not valid JSON/);
  assert.match(core.events[0].message, /app\.js:\d+/);
});
