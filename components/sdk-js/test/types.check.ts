// Compiled (never run) by `npm run typecheck`: the declarations describe
// the API as a service uses it.
import {
  HttpError,
  StoreUnavailableError,
  auth,
  call,
  json,
  log,
  registry,
  service,
  store,
  type Claims,
  type KeyPage,
} from '@hms/sdk';
import { read, request, useFakeCore } from '@hms/sdk/testing';

const app = service({ name: 'typed-service', routes: ['/typed/...'], callers: ['report-service'] });
app
  .get('/typed/{id}', (req, { params, query }) => {
    const id: string = params.id;
    const limit: string | null = query.get('limit');
    return { id, limit };
  })
  .post('/typed', async (req, ctx) => {
    const claims: Claims = auth.verifyRequest(req);
    const body = await ctx.json<{ title: string }>();
    const n: number = store.increment('seq');
    store.setJson(`t/${n}`, { title: body.title, by: claims.subject });
    const page: KeyPage = store.keys('t/', { limit: 10 });
    const gone: boolean = store.delete('t/0');
    const swapped: boolean = store.compareAndSwap('k', null, 'v');
    log.info(`posted ${n} ${page.keys.length} ${gone} ${swapped}`);
    const res: Response = await call('report-service', '/reports/identity-check', { json: { id: 'C1' } });
    if (!res.ok) throw new HttpError(502, 'upstream_error', `report-service answered ${res.status}`);
    return json({ n }, 201);
  })
  .delete('/typed/{id}', () => {
    try {
      store.get('k');
    } catch (e) {
      if (e instanceof StoreUnavailableError) throw e.toHttpError();
      throw e;
    }
    return undefined;
  });

const endpoint = registry.discover('report-service');
const url: string | undefined = endpoint?.url;
const info: { name: string; routes: string[] } = app.describe();

async function check(): Promise<number> {
  const core = useFakeCore({ service: 'typed-service' });
  core.mount('report-service', () => json({ report: 'ok' }), { routes: ['/reports/...'] });
  const r = await read(await app.handle(request('POST', '/typed', { json: { title: 't' }, token: core.auth.issue('x') })));
  return r.status + core.events.length + (url ? 1 : 0) + info.routes.length;
}
void check;
