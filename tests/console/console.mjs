// Drives the hms-host web console in a real Chromium against a real host.
//
//   HMS_URL=http://127.0.0.1:PORT HMS_ADMIN_TOKEN=hmsadmin_... node tests/console/console.mjs
//
// The host must serve the seed's identity-service (with at least two
// versions, the newer one active) and report-service, and HMS_UPLOAD must
// name another build of identity-service to deploy. Optional:
//   HMS_SCREENSHOT  path of a PNG of the services view to write
//   HMS_ARTIFACTS   a directory for a screenshot of the page when a step fails
//   HMS_CHROMIUM    the browser (default /usr/bin/chromium)
//
// Prints one line per step and exits 0 when every step passed; otherwise
// names the failed step and why, and exits 1.

import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';

const STEP_TIMEOUT_MS = 15_000;
const TOTAL_TIMEOUT_MS = 180_000;

const url = (process.env.HMS_URL ?? '').replace(/\/+$/, '');
const adminToken = process.env.HMS_ADMIN_TOKEN ?? '';
const screenshot = process.env.HMS_SCREENSHOT;
const artifacts = process.env.HMS_ARTIFACTS;
const executablePath = process.env.HMS_CHROMIUM ?? '/usr/bin/chromium';
const uploadPath = process.env.HMS_UPLOAD ?? '';

function die(message) {
  console.error(`console test: ${message}`);
  process.exit(1);
}

if (!url || !adminToken) die('set HMS_URL (the host) and HMS_ADMIN_TOKEN (its admin credential)');
if (!existsSync(uploadPath)) die('set HMS_UPLOAD to a component of identity-service to deploy (a .wasm file)');
if (!existsSync(executablePath)) {
  die(`no Chromium at ${executablePath}: install it with \`apt-get install -y chromium\` (or set HMS_CHROMIUM)`);
}
let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  die(`cannot load playwright-core (${e.code ?? e.message}): run \`npm ci --prefix tests/console\``);
}

const origin = new URL(url).origin;
const SERVICE = 'identity-service';

// ------------------------------------------------------------ helpers ----

async function hms(path, { method = 'GET', body, bearer = adminToken, headers = {} } = {}) {
  const response = await fetch(url + path, {
    method,
    headers: { ...(bearer ? { authorization: `Bearer ${bearer}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  return { status: response.status, headers: response.headers, json, text };
}

/** A request crossing report-service and identity-service. */
async function seedRequest(traceId) {
  const headers = traceId ? { traceparent: `00-${traceId}-00f067aa0ba902b7-01` } : {};
  const r = await hms('/reports/identity-check', { method: 'POST', body: { id: 'C12345' }, bearer: null, headers });
  if (r.status !== 200) throw new Error(`seed request answered ${r.status}: ${r.text}`);
  return r.headers.get('x-trace-id');
}

function check(condition, message) {
  if (!condition) throw new Error(message);
}

/** Polls `probe` until it returns a truthy value; fails with `what`. */
async function until(probe, what, timeout = STEP_TIMEOUT_MS) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function randomTrace() {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// -------------------------------------------------------------- setup ----

const watchdog = setTimeout(() => die(`the whole run took longer than ${TOTAL_TIMEOUT_MS / 1000} s`), TOTAL_TIMEOUT_MS);
watchdog.unref();

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, deviceScaleFactor: 1, colorScheme: 'light' });
context.setDefaultTimeout(STEP_TIMEOUT_MS);
const page = await context.newPage();

const pageErrors = [];
const foreign = [];
page.on('pageerror', (e) => pageErrors.push(`uncaught: ${e.message}`));
page.on('console', (msg) => {
  // A 401 the page provokes on purpose is logged by Chromium as a failed load.
  if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) pageErrors.push(msg.text());
});
page.on('request', (req) => {
  if (new URL(req.url()).origin !== origin) foreign.push(req.url());
});

const testid = (id) => page.getByTestId(id);
let passed = 0;

async function step(name, body) {
  const started = Date.now();
  try {
    await body();
  } catch (e) {
    console.error(`FAIL ${name}: ${e.message}`);
    if (artifacts) {
      mkdirSync(artifacts, { recursive: true });
      const path = join(artifacts, 'console-failure.png');
      await page.screenshot({ path, fullPage: true }).catch(() => {});
      console.error(`     page at the failure: ${path}`);
    }
    console.error(`     page URL: ${page.url()}`);
    await browser.close().catch(() => {});
    process.exit(1);
  }
  passed += 1;
  console.log(`ok ${passed} ${name} (${Date.now() - started} ms)`);
}

// -------------------------------------------------------------- steps ----

await step('the console loads without a credential, under a strict CSP', async () => {
  const response = await page.goto(`${url}/_hms/console`);
  check(response.status() === 200, `GET /_hms/console answered ${response.status()}`);
  const csp = response.headers()['content-security-policy'] ?? '';
  check(csp.includes("default-src 'self'") && !csp.includes('unsafe'), `weak or missing CSP: ${csp}`);
  await testid('signin-form').waitFor();
  check(await page.getByLabel('Admin credential').isVisible(), 'the credential field has no label');
  check(!(await page.getByRole('navigation').isVisible()), 'views are shown before sign-in');
});

await step('a wrong credential is refused with a message', async () => {
  await page.getByLabel('Admin credential').fill('hmsadmin_not-the-credential');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const error = testid('signin-error');
  await error.waitFor();
  const text = await error.textContent();
  check(/refused/i.test(text) && text.includes('invalid admin credential'), `sign-in error says ${JSON.stringify(text)}`);
  check(!(await page.getByRole('navigation').isVisible()), 'signed in with a wrong credential');
  check(await page.evaluate(() => sessionStorage.length === 0), 'a refused credential was stored');
});

await step('the admin credential signs in (keyboard only)', async () => {
  await page.getByLabel('Admin credential').focus();
  await page.keyboard.type(adminToken);
  await page.keyboard.press('Enter');
  const nav = page.getByRole('navigation', { name: 'Console views' });
  const refused = testid('signin-error');
  await until(async () => (await nav.isVisible()) || (await refused.isVisible()), 'the views or a refusal');
  if (await refused.isVisible()) throw new Error(`HMS_ADMIN_TOKEN was refused: ${await refused.innerText()}`);
  await testid('services-list').waitFor();
  const stored = await page.evaluate(() => Object.values(sessionStorage));
  check(stored.includes(adminToken), 'the credential is not kept in sessionStorage');
});

const card = (service) => page.locator(`[data-testid="service-card"][data-service="${service}"]`);

await step('the services view shows identity-service with version, routes, callers and limits', async () => {
  await card(SERVICE).waitFor();
  await card('report-service').waitFor();
  const registry = await hms('/_hms/services');
  const entry = registry.json.services.find((s) => s.name === SERVICE);
  const text = await card(SERVICE).innerText();
  const shown = await card(SERVICE).locator('code.version').getAttribute('data-version');
  check(shown === entry.version, `card shows version ${shown}, registry has ${entry.version}`);
  for (const expected of ['/identity/...', 'Callers', 'Limits', 'memory', 'timeout', 'concurrency']) {
    check(text.includes(expected), `identity-service card lacks ${JSON.stringify(expected)}:\n${text}`);
  }
});

await step('the request rate is live (derived from the counters every 2 s)', async () => {
  const rate = card(SERVICE).getByTestId('service-rate');
  const before = Number((await card(SERVICE).getByTestId('service-requests').innerText()).replace(/\D/g, '')) || 0;
  let stop = false;
  const load = (async () => {
    for (let i = 0; !stop; i += 1) {
      await seedRequest();
      // An uneven load, so the chart shows the rate move.
      await new Promise((r) => setTimeout(r, 40 + 60 * Math.abs(Math.sin(i / 12))));
    }
  })();
  try {
    await until(async () => Number(await rate.innerText()) > 0, 'a non-zero request rate');
    await until(async () => {
      const now = Number((await card(SERVICE).getByTestId('service-requests').innerText()).replace(/\D/g, ''));
      return now > before;
    }, 'the request counter to grow');
    // A few more polls, so the chart has a few points for the screenshot.
    await page.waitForTimeout(6500);
  } finally {
    stop = true;
    await load;
  }
  if (screenshot) {
    mkdirSync(dirname(screenshot), { recursive: true });
    // The page down to the end of the services, not the empty rest.
    const bottom = await page.evaluate(() => document.getElementById('services-list').getBoundingClientRect().bottom);
    await page.screenshot({ path: screenshot, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(bottom) + 28 } });
    console.log(`   screenshot of the services view: ${screenshot}`);
  }
});

await step('a new version is uploaded from the versions view (and a bad file refused)', async () => {
  await card(SERVICE).getByRole('link', { name: `Versions of ${SERVICE}` }).click();
  await page.waitForURL(/#\/services\/identity-service$/);
  const rows = page.getByTestId('version-row');
  await until(async () => (await rows.count()) >= 2, 'at least two versions listed');
  const before = await rows.count();
  const file = page.getByLabel('Component file');
  await file.setInputFiles({ name: 'not-a-component.wasm', mimeType: 'application/wasm', buffer: Buffer.from('<html>') });
  await page.getByRole('button', { name: 'Deploy' }).click();
  const error = testid('error');
  await error.waitFor();
  const text = await error.innerText();
  check(text.includes('not a WebAssembly file'), `a bad upload says ${JSON.stringify(text)}`);
  check((await rows.count()) === before, 'a refused upload added a version');
  await file.setInputFiles(uploadPath);
  await page.getByRole('button', { name: 'Deploy' }).click();
  await until(async () => (await rows.count()) === before + 1, 'the uploaded version in the list');
  await until(async () => (await testid('status').innerText()).includes('now serves'), 'a confirmation');
  check(await error.isHidden(), 'the refusal is still shown after a good upload');
  const uploaded = await page.locator('[data-testid="version-row"][data-active="true"]').getAttribute('data-version');
  const registry = await hms('/_hms/services');
  check(registry.json.services.find((s) => s.name === SERVICE).version === uploaded, `the host does not serve the upload ${uploaded}`);
});

let earlier;
await step('identity-service rolls back to its earliest version from the versions view', async () => {
  const rows = page.getByTestId('version-row');
  const active = page.locator('[data-testid="version-row"][data-active="true"]');
  check((await active.count()) === 1, 'not exactly one active version');
  const activeBefore = await active.getAttribute('data-version');
  const older = page.locator('[data-testid="version-row"][data-active="false"]');
  earlier = await older.first().getAttribute('data-version');
  await older.first().getByRole('button', { name: /^Roll back/ }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  await dialog.getByRole('button', { name: 'Roll back' }).click();
  await page.locator(`[data-testid="version-row"][data-version="${earlier}"][data-active="true"]`).waitFor();
  await until(async () => (await testid('status').innerText()).includes('now serves'), 'a confirmation');
  const versions = await hms(`/_hms/services/${SERVICE}/versions`);
  const serving = versions.json.versions.find((v) => v.active).version;
  check(serving === earlier, `the API says ${serving} is active, not ${earlier}`);
  check(serving !== activeBefore, 'the active version did not change');
  const registry = await hms('/_hms/services');
  check(registry.json.services.find((s) => s.name === SERVICE).version === earlier, 'the registry still lists the newer version');
  await seedRequest(); // the earlier version serves
});

await step('the audit log pages on with the returned cursor', async () => {
  const PAGE = 100;
  while ((await hms(`/_hms/events?limit=${PAGE + 1}`)).json.events.length <= PAGE) await seedRequest();
  await testid('nav-events').click();
  await testid('events-table').waitFor();
  const rows = page.getByTestId('event-row');
  await until(async () => (await rows.count()) === PAGE, `a first page of ${PAGE} events`);
  await testid('events-more').click();
  await until(async () => (await rows.count()) > PAGE, 'the next page');
  const seqs = await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.lastElementChild.textContent.split(':').pop())));
  check(seqs.every((seq, i) => seq === i + 1), `the two pages are not the log's events 1..${seqs.length} in order`);
});

let followed;
await step('the audit log follows the trace of a real request across both services', async () => {
  const reportRow = page.locator('[data-testid="event-row"][data-service="report-service"]').first();
  await until(async () => {
    if (await reportRow.count()) return true;
    const more = testid('events-more');
    if (await more.isVisible()) await more.click();
    return false;
  }, 'an event of report-service in the log');
  followed = await reportRow.getAttribute('data-trace');
  await reportRow.getByTestId('trace-link').click();
  await page.waitForURL(new RegExp(`#/events\\?trace=${followed}$`));
  await testid('trace-banner').waitFor();
  const rows = page.getByTestId('event-row');
  const expected = (await hms(`/_hms/events?trace=${followed}`)).json.events;
  await until(async () => (await rows.count()) === expected.length, `${expected.length} events of the trace`);
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => ({ trace: tr.dataset.trace, service: tr.dataset.service })));
  check(shown.every((r) => r.trace === followed), 'an event of another trace is shown');
  const services = new Set(shown.map((r) => r.service));
  for (const s of ['report-service', 'identity-service']) check(services.has(s), `no event of ${s} in the trace (${[...services]})`);
  check(await testid('filter-trace').inputValue() === followed, 'the trace filter does not show the trace');
});

await step('the service and level filters narrow the log', async () => {
  await testid('trace-clear').click();
  await page.waitForURL(/#\/events$/);
  await page.getByLabel('Service', { exact: true }).fill(SERVICE);
  await page.getByLabel('Level (at least)').selectOption('info');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForURL(/service=identity-service/);
  const rows = page.getByTestId('event-row');
  await until(async () => (await rows.count()) > 0, 'events of identity-service');
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => [tr.dataset.service, tr.dataset.level]));
  check(shown.every(([s, l]) => s === SERVICE && l !== 'debug'), `filtered log shows ${JSON.stringify(shown.slice(0, 5))}`);
  await testid('filter-clear').click();
  await page.waitForURL(/#\/events$/);
});

await step('the live tail picks up a new event (long poll)', async () => {
  const tailing = page.waitForRequest((r) => r.url().includes('/_hms/events?') && r.url().includes('wait='));
  await page.getByLabel('Live tail').check();
  await tailing;
  await page.waitForTimeout(700); // the long poll is now held by the host
  const trace = randomTrace();
  const got = await seedRequest(trace);
  check(got === trace, `the host continued trace ${got}, not ${trace}`);
  const fresh = page.locator(`[data-testid="event-row"][data-trace="${trace}"]`);
  await until(async () => (await fresh.count()) === 2, 'both events of the new request in the tail');
  check(await fresh.first().evaluate((tr) => tr.classList.contains('fresh')), 'tail rows are not marked new');
  await page.getByLabel('Live tail').uncheck();
});

await step('an API key is created (shown once), works, and is revoked', async () => {
  await testid('nav-keys').click();
  await testid('keys-table').waitFor();
  await page.getByLabel('Service the key authenticates as').fill('console-e2e');
  await page.getByRole('button', { name: 'Create key' }).click();
  await testid('key-secret').waitFor();
  const secret = await testid('key-secret-value').inputValue();
  check(/^hms_[^_]+_.+/.test(secret), `the new key looks like ${JSON.stringify(secret)}`);
  check((await hms('/_hms/auth/token', { method: 'POST', body: { api_key: secret }, bearer: null })).status === 200, 'the new key is refused');
  const id = secret.split('_')[1];
  const row = page.locator(`[data-testid="key-row"][data-key="${id}"]`);
  await row.waitFor();
  await page.getByRole('button', { name: 'Done' }).click();
  check(!(await testid('key-secret').isVisible()), 'the secret stays on screen');
  const revoke = row.getByRole('button', { name: `Revoke key ${id} of console-e2e` });
  // Escape (the dialog opens on Cancel) changes nothing.
  await revoke.click();
  await page.getByRole('dialog').waitFor();
  check(await page.evaluate(() => document.activeElement.textContent === 'Cancel'), 'the dialog does not focus Cancel');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'hidden' });
  await page.waitForTimeout(300);
  check((await row.getAttribute('data-revoked')) === 'false', 'Escape revoked the key');
  check((await hms('/_hms/auth/token', { method: 'POST', body: { api_key: secret }, bearer: null })).status === 200, 'Escape revoked the key');
  await revoke.click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await page.locator(`[data-testid="key-row"][data-key="${id}"][data-revoked="true"]`).waitFor();
  const after = await hms('/_hms/auth/token', { method: 'POST', body: { api_key: secret }, bearer: null });
  check(after.status === 401, `a revoked key still answers ${after.status}`);
});

await step('the cluster view lists this host, labelled single', async () => {
  await testid('nav-cluster').click();
  const row = page.getByTestId('host-row');
  await row.first().waitFor();
  check((await row.count()) === 1, 'a standalone host lists more than itself');
  check((await testid('cluster-mode').innerText()) === 'Single host', 'not labelled as a single host');
  const text = await row.innerText();
  check(text.includes('this host') && text.includes(SERVICE) && text.includes('report-service'), `host row: ${text}`);
});

await step('an API error is shown with its message', async () => {
  await page.goto(`${url}/_hms/console#/services/no-such-service`);
  const error = testid('error');
  await error.waitFor();
  const text = await error.innerText();
  check(text.includes('no-such-service'), `error banner says ${JSON.stringify(text)}`);
});

await step('a credential the host stops accepting returns to sign-in with a message', async () => {
  await page.evaluate(() => { for (const k of Object.keys(sessionStorage)) sessionStorage.setItem(k, 'hmsadmin_stale'); });
  await testid('nav-keys').click();
  const error = testid('signin-error');
  await error.waitFor();
  const text = await error.innerText();
  check(text.includes('Sign in again') && text.includes('invalid admin credential'), `sign-in says ${JSON.stringify(text)}`);
  check(await page.evaluate(() => sessionStorage.length === 0), 'the refused credential stays stored');
});

await step('sign out forgets the credential', async () => {
  await page.getByLabel('Admin credential').fill(adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation').waitFor();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await testid('signin-form').waitFor();
  check(await page.evaluate(() => sessionStorage.length === 0), 'the credential survives sign-out');
});

await step('no script errors, CSP violations or requests to other origins', async () => {
  check(pageErrors.length === 0, `the page logged errors:\n${pageErrors.join('\n')}`);
  check(foreign.length === 0, `the page asked other origins:\n${foreign.join('\n')}`);
});

await browser.close();
console.log(`console test: all ${passed} steps passed`);
