// notice-service: the agency's public notice board.
//
//   GET    /notices?limit=N&cursor=C  a page of notices, oldest first:
//                                     {"notices": [...], "next": C | null}
//   POST   /notices                   {"title", "body", "citizen_id"?}, with a
//                                     Bearer token: 201 the notice. With a
//                                     citizen_id, report-service is asked
//                                     about the addressee and its words kept.
//   GET    /notices/stats             {"posted": N}
//   GET    /notices/{id}              one notice, or 404
//   PATCH  /notices/{id}              {"title"?, "body"?}, author or notice-admin
//   DELETE /notices/{id}              author or notice-admin: 204
//
// A notice is stored as JSON under `notice/<id, 10 digits>` so that the
// store's key order is posting order; ids come from `increment`.

import { HttpError, auth, call, json, log, service, store } from '@hms/sdk';

/** Token subjects that may change or remove any notice. */
export const ADMIN_SUBJECTS = ['notice-admin'];
const MAX_TITLE = 200;
const MAX_BODY = 5000;
const PAGE_DEFAULT = 20;
const PAGE_MAX = 100;

const app = service({ name: 'notice-service', routes: ['/notices/...'] });

app.get('/notices', list);
app.post('/notices', post);
app.get('/notices/stats', () => ({ posted: Number(store.getText('seq/notice') ?? 0) }));
app.get('/notices/{id}', (req, { params }) => load(parseId(params.id)));
app.patch('/notices/{id}', update);
app.delete('/notices/{id}', remove);

export default app;

/** `GET /notices?limit=N&cursor=C`. */
function list(req, { query }) {
  const limit = query.has('limit') ? Number(query.get('limit')) : PAGE_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > PAGE_MAX) {
    throw new HttpError(400, 'bad_request', `limit is an integer 1-${PAGE_MAX}`);
  }
  const page = store.keys('notice/', { cursor: query.get('cursor') ?? undefined, limit });
  const notices = page.keys.map((key) => store.getJson(key)).filter((n) => n !== undefined);
  return { notices, next: page.next ?? null };
}

/** `POST /notices`. */
async function post(req, ctx) {
  const claims = auth.verifyRequest(req);
  const input = await ctx.json();
  const title = text(input?.title, 'title', MAX_TITLE, true);
  const body = text(input?.body, 'body', MAX_BODY, false) ?? '';
  const citizenId = input?.citizen_id;
  if (citizenId !== undefined && (typeof citizenId !== 'string' || citizenId.trim() === '')) {
    throw new HttpError(400, 'bad_request', '`citizen_id` is a non-empty string');
  }
  const recipient = citizenId === undefined ? undefined : await addressee(citizenId);

  const id = store.increment('seq/notice', 1);
  const notice = {
    id,
    title,
    body,
    author: claims.subject,
    posted_at: new Date().toISOString(),
    version: 1,
    ...(recipient && { recipient }),
  };
  store.setJson(key(id), notice);
  log.info(`Notice ${id} posted by ${claims.subject}${recipient ? ` to ${recipient.citizen_id}` : ''}`);
  return json(notice, 201);
}

/**
 * What report-service says about a citizen: `{citizen_id, report}`. An ID
 * it refuses is the client's 400; any other failure a 502 (a missing
 * report-service is the SDK's 503).
 */
async function addressee(citizenId) {
  const res = await call('report-service', '/reports/identity-check', { json: { id: citizenId } });
  const answer = await res.json().catch(() => undefined);
  if (res.ok && typeof answer?.report === 'string') return { citizen_id: citizenId, report: answer.report };
  if (res.status === 400) {
    throw new HttpError(400, 'bad_request', `report-service refused the ID: ${answer?.message ?? res.status}`);
  }
  throw new HttpError(502, 'upstream_error', `report-service answered ${res.status}`);
}

/** `PATCH /notices/{id}`: optimistic update with compare-and-swap. */
async function update(req, ctx) {
  const claims = auth.verifyRequest(req);
  const id = parseId(ctx.params.id);
  const input = await ctx.json();
  const title = text(input?.title, 'title', MAX_TITLE, false);
  const body = text(input?.body, 'body', MAX_BODY, false);
  for (let attempt = 0; attempt < 3; attempt++) {
    const before = store.getText(key(id));
    if (before === undefined) throw notFound(id);
    const notice = JSON.parse(before);
    mayChange(claims, notice);
    const after = {
      ...notice,
      ...(title !== undefined && { title }),
      ...(body !== undefined && { body }),
      version: notice.version + 1,
    };
    if (store.compareAndSwap(key(id), before, JSON.stringify(after))) {
      log.info(`Notice ${id} updated by ${claims.subject} (version ${after.version})`);
      return after;
    }
  }
  throw new HttpError(409, 'conflict', `notice ${id} is being changed; try again`);
}

/** `DELETE /notices/{id}`. */
function remove(req, { params }) {
  const claims = auth.verifyRequest(req);
  const id = parseId(params.id);
  mayChange(claims, load(id));
  store.delete(key(id));
  log.info(`Notice ${id} removed by ${claims.subject}`);
  return undefined; // 204
}

function load(id) {
  const notice = store.getJson(key(id));
  if (notice === undefined) throw notFound(id);
  return notice;
}

function mayChange(claims, notice) {
  if (claims.subject !== notice.author && !ADMIN_SUBJECTS.includes(claims.subject)) {
    throw new HttpError(403, 'forbidden', `${claims.subject} may not change notice ${notice.id}`);
  }
}

const notFound = (id) => new HttpError(404, 'not_found', `no notice ${id}`);

/** Keys sort as posting order: `notice/0000000042`. */
export function key(id) {
  return `notice/${String(id).padStart(10, '0')}`;
}

function parseId(raw) {
  if (!/^[0-9]{1,10}$/.test(raw) || Number(raw) === 0) {
    throw new HttpError(400, 'bad_request', 'a notice id is a positive decimal number');
  }
  return Number(raw);
}

function text(value, field, max, required) {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'string' || (required && value.trim() === '') || value.length > max) {
    throw new HttpError(400, 'bad_request', `\`${field}\` is a ${required ? 'non-empty ' : ''}string of at most ${max} characters`);
  }
  return value;
}
