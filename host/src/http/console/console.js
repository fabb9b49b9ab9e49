// The hms-host web console: one page, a few views, talking only to the Core
// API under /_hms with the admin credential as a bearer token. Every piece
// of data reaches the page through textContent or attributes, never as
// markup: event messages, service names and versions are anyone's to write.

const API = '/_hms';
const TOKEN_KEY = 'hms.console.admin';
const POLL_MS = 2000;
const PAGE = 100;
const TAIL_WAIT_S = 25;
const MAX_ROWS = 5000;
const SPARK_POINTS = 30;

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- DOM ----

/** An element with attributes (`text` sets textContent, `on*` listens). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'text') node.textContent = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  return node;
}

// ------------------------------------------------------------- format ----

function shortVersion(version) {
  const m = /^sha256:([0-9a-f]+)$/.exec(version);
  return m ? `sha256:${m[1].slice(0, 12)}` : version;
}

function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[i]}`;
}

function millis(ms) {
  return ms >= 1000 ? `${+(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

function dateTime(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, {
    year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

function clock(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function rate(perSecond) {
  if (perSecond === null) return '–';
  if (perSecond === 0) return '0';
  return perSecond >= 10 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}

// ---------------------------------------------------------------- API ----

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

/**
 * Calls the Core API. `json` is sent as a JSON body, `body` as is. A
 * non-2xx answer throws an ApiError with the API's own message; a 401 ends
 * the session (back to sign-in) unless `bearer` was given explicitly.
 */
async function api(path, { method = 'GET', json, body, type, signal, bearer } = {}) {
  const headers = new Headers();
  const credential = bearer ?? token();
  if (credential) headers.set('Authorization', `Bearer ${credential}`);
  if (json !== undefined) {
    headers.set('Content-Type', 'application/json');
    body = JSON.stringify(json);
  } else if (type) {
    headers.set('Content-Type', type);
  }
  let response;
  let text;
  try {
    response = await fetch(API + path, { method, headers, body, signal, cache: 'no-store', credentials: 'omit' });
    text = await response.text();
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'unreachable', `Cannot reach the host (${e.message}).`);
  }
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const message = data && typeof data.message === 'string' && data.message
      ? data.message
      : `${response.status} ${response.statusText}`.trim();
    const error = new ApiError(response.status, data?.code ?? '', message);
    if (response.status === 401 && bearer === undefined) endSession(error);
    throw error;
  }
  return data;
}

const enc = encodeURIComponent;

// ------------------------------------------------------- page chrome ----

function showError(error) {
  if (error?.name === 'AbortError') return;
  if (error instanceof ApiError && error.status === 401) return; // sign-in says it
  const notice = $('notice');
  notice.replaceChildren(
    el('span', { text: error?.message ?? String(error) }),
    el('button', { type: 'button', class: 'ghost small', 'aria-label': 'Dismiss', onclick: clearError }, '×'),
  );
  notice.hidden = false;
}

function clearError() {
  $('notice').hidden = true;
  $('notice').replaceChildren();
}

let statusTimer;
/** A short confirmation (a polite live region), gone after a while. */
function say(message) {
  clearTimeout(statusTimer);
  $('status').textContent = message;
  statusTimer = setTimeout(() => { $('status').textContent = ''; }, 8000);
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) { reject(signal.reason); return; }
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

/** Asks with the modal dialog; resolves true on confirm. */
function confirmAction(title, text, okLabel, { danger = false } = {}) {
  const dialog = $('confirm');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = okLabel;
  $('confirm-ok').className = danger ? 'danger-solid' : 'primary';
  dialog.returnValue = '';
  dialog.showModal();
  // The harmless choice has the focus: Enter alone changes nothing.
  dialog.querySelector('[value=cancel]').focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

// -------------------------------------------------- session & routing ----

/** The current view visit: aborted when the view is left. */
let visit = new AbortController();

function endSession(error) {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn(`Signed out: the host refused the admin credential (${error.message}). Sign in again.`);
}

function showSignIn(message) {
  visit.abort();
  visit = new AbortController();
  clearError();
  $('nav').hidden = true;
  $('session').hidden = true;
  for (const view of document.querySelectorAll('.view')) view.hidden = true;
  $('view-signin').hidden = false;
  const error = $('signin-error');
  error.textContent = message ?? '';
  error.hidden = !message;
  $('signin-token').value = '';
  $('signin-token').focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = $('signin-token');
  const error = $('signin-error');
  const credential = input.value.trim();
  const submit = event.submitter ?? $('signin-form').querySelector('button[type=submit]');
  error.hidden = true;
  if (!credential) {
    error.textContent = 'Enter the admin credential (hmsadmin_…).';
    error.hidden = false;
    input.focus();
    return;
  }
  submit.disabled = true;
  try {
    // Any admin-only read proves the credential.
    await api('/keys', { bearer: credential });
  } catch (e) {
    error.textContent = e.status === 401
      ? `Sign-in refused: ${e.message}.`
      : `Could not sign in: ${e.message}`;
    error.hidden = false;
    input.select();
    input.focus();
    return;
  } finally {
    submit.disabled = false;
  }
  sessionStorage.setItem(TOKEN_KEY, credential);
  input.value = '';
  error.hidden = true;
  route(true);
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  showSignIn();
  say('Signed out.');
}

function parseHash() {
  const [path, query = ''] = (location.hash.slice(1) || '/services').split('?');
  const parts = path.split('/').filter(Boolean).map((part) => {
    try { return decodeURIComponent(part); } catch { return part; }
  });
  return { parts, params: new URLSearchParams(query) };
}

const views = {};

function route(focus) {
  if (!token()) { showSignIn(); return; }
  visit.abort();
  visit = new AbortController();
  clearError();
  if (focus) $('status').textContent = '';
  $('nav').hidden = false;
  $('session').hidden = false;
  $('host-origin').textContent = location.host;
  const { parts, params } = parseHash();
  let name = parts[0] ?? 'services';
  if (name === 'services' && parts.length > 1) name = 'versions';
  if (!views[name]) name = 'services';
  for (const view of document.querySelectorAll('.view')) view.hidden = view.id !== `view-${name}`;
  const navName = name === 'versions' ? 'services' : name;
  for (const link of document.querySelectorAll('#nav a')) {
    if (link.dataset.view === navName) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const section = $(`view-${name}`);
  if (focus) {
    const heading = section.querySelector('h1');
    heading.tabIndex = -1;
    heading.focus({ preventScroll: true });
  }
  views[name](visit.signal, parts, params).catch(showError);
}

// ---------------------------------------------------------- services ----

/** Per service: the last counter sample and recent rates. */
const samples = new Map();
const cards = new Map();

/** The recent rates (the last minute at most) as a small area chart. */
function sparkline(values) {
  const width = 150;
  const height = 32;
  const max = Math.max(1, ...values);
  const step = width / Math.max(1, values.length - 1);
  const xy = values.map((v, i) => [(i * step).toFixed(1), (height - 1 - (v / max) * (height - 4)).toFixed(1)]);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, width, height, class: 'spark', 'aria-hidden': 'true' });
  chart.append(svg('line', { x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5, class: 'base' }));
  if (xy.length > 1) {
    const line = xy.map(([x, y]) => `${x},${y}`).join(' ');
    chart.append(svg('polygon', { points: `${xy[0][0]},${height} ${line} ${width},${height}`, class: 'area' }));
    chart.append(svg('polyline', { points: line, class: 'line' }));
  }
  return chart;
}

function definition(term, ...detail) {
  return [el('dt', { text: term }), el('dd', {}, ...detail)];
}

function list(items, empty) {
  if (!items.length) return el('span', { class: 'muted', text: empty });
  return el('ul', { class: 'chips' }, items.map((i) => el('li', {}, el('code', { text: i }))));
}

function serviceCard(name) {
  const refs = {
    version: el('code', { class: 'version' }),
    kind: el('span', { class: 'badge' }),
    rate: el('span', { class: 'metric-value', 'data-testid': 'service-rate' }),
    spark: el('span', { class: 'spark-slot' }),
    total: el('span', { class: 'metric-value', 'data-testid': 'service-requests' }),
    inFlight: el('span', { class: 'metric-value', 'data-testid': 'service-in-flight' }),
    hits: el('span', { class: 'metric-value', 'data-testid': 'service-limit-hits' }),
    details: el('dl', { class: 'details' }),
    note: el('p', { class: 'muted small', hidden: true }),
    footer: el('div', { class: 'card-foot' }),
  };
  const title = el('h2', { id: `svc-${cards.size}` }, name);
  const node = el('article', { class: 'card service', 'data-testid': 'service-card', 'data-service': name, 'aria-labelledby': title.id },
    el('header', { class: 'card-head' }, title, refs.kind, refs.version),
    el('div', { class: 'metrics' },
      el('div', { class: 'metric' }, el('span', { class: 'metric-label', text: 'Requests/s' }), el('span', { class: 'metric-line' }, refs.rate, refs.spark)),
      el('div', { class: 'metric' }, el('span', { class: 'metric-label', text: 'Requests' }), refs.total),
      el('div', { class: 'metric' }, el('span', { class: 'metric-label', text: 'In flight' }), refs.inFlight),
      el('div', { class: 'metric' }, el('span', { class: 'metric-label', text: 'Limits hit' }), refs.hits)),
    refs.details, refs.note, refs.footer);
  refs.footer.append(el('a', { href: `#/services/${enc(name)}`, class: 'button', 'data-testid': 'versions-link', 'aria-label': `Versions of ${name}` }, 'Versions →'));
  return { node, refs };
}

function updateCard(card, entry, stats, now) {
  const { refs } = card;
  refs.version.textContent = shortVersion(entry.version);
  refs.version.title = entry.version;
  refs.version.dataset.version = entry.version;
  refs.kind.textContent = entry.kind;
  refs.kind.className = `badge ${entry.kind}`;
  const details = [];
  details.push(...definition('Routes', list(entry.routes ?? [], entry.kind === 'external' ? entry.url : 'none')));
  if (stats instanceof ApiError) {
    refs.note.textContent = `Stats unavailable: ${stats.message}`;
    refs.note.hidden = false;
  } else {
    refs.note.hidden = true;
  }
  if (stats && !(stats instanceof ApiError)) {
    const prev = samples.get(entry.name);
    const requests = stats.counters.requests ?? 0;
    let perSecond = null;
    const history = prev?.history ?? [];
    if (prev && now > prev.t) {
      perSecond = Math.max(0, (requests - prev.requests) / ((now - prev.t) / 1000));
      history.push(perSecond);
      if (history.length > SPARK_POINTS) history.shift();
    }
    samples.set(entry.name, { requests, t: now, history });
    refs.rate.textContent = rate(perSecond ?? (prev ? 0 : null));
    refs.spark.replaceChildren(sparkline(history));
    refs.total.textContent = requests.toLocaleString();
    refs.inFlight.textContent = String(stats.in_flight);
    const hit = Object.entries(stats.counters).filter(([k, v]) => k !== 'requests' && v > 0);
    refs.hits.textContent = hit.reduce((sum, [, v]) => sum + v, 0).toLocaleString();
    refs.hits.title = hit.length ? hit.map(([k, v]) => `${k}: ${v}`).join(', ') : 'none';
    const callers = stats.callers === null
      ? el('span', { class: 'muted', text: 'any service' })
      : list(stats.callers, 'none (only outside requests)');
    details.push(...definition('Callers', callers));
    details.push(...definition('Outbound', list(stats.allow_outbound, 'host services only')));
    const l = stats.limits;
    details.push(...definition('Limits', el('ul', { class: 'limits' },
      el('li', {}, el('span', { text: 'memory ' }), el('b', { text: bytes(l.memory) })),
      el('li', {}, el('span', { text: 'timeout ' }), el('b', { text: millis(l.request_timeout) })),
      el('li', {}, el('span', { text: 'concurrency ' }), el('b', { text: String(l.max_concurrency) })),
      el('li', {}, el('span', { text: 'request body ' }), el('b', { text: bytes(l.max_request_body) })),
      el('li', {}, el('span', { text: 'response body ' }), el('b', { text: bytes(l.max_response_body) })),
      el('li', {}, el('span', { text: 'store ' }), el('b', { text: bytes(l.store_quota) })))));
  } else if (!stats) {
    for (const r of [refs.rate, refs.total, refs.inFlight, refs.hits]) r.textContent = '–';
    refs.spark.replaceChildren();
    details.push(...definition('Address', el('code', { text: entry.url })));
    if (entry.expires_at) details.push(...definition('Lapses', dateTime(entry.expires_at)));
    details.push(...definition('Registered by', entry.registered_by ?? 'an operator'));
  }
  refs.details.replaceChildren(...details);
  refs.footer.hidden = entry.kind !== 'component';
}

views.services = async (signal) => {
  const listNode = $('services-list');
  while (!signal.aborted) {
    try {
      const { services } = await api('/services', { signal });
      const stats = await Promise.all(services.map((s) => (s.kind === 'component'
        ? api(`/services/${enc(s.name)}/stats`, { signal }).catch((e) => {
          if (e.name === 'AbortError' || e.status === 401) throw e;
          return e;
        })
        : null)));
      const now = performance.now();
      const seen = new Set();
      services.forEach((entry, i) => {
        seen.add(entry.name);
        if (!cards.has(entry.name)) cards.set(entry.name, serviceCard(entry.name));
        updateCard(cards.get(entry.name), entry, stats[i], now);
      });
      for (const name of [...cards.keys()]) {
        if (!seen.has(name)) { cards.get(name).node.remove(); cards.delete(name); samples.delete(name); }
      }
      const ordered = services.map((s) => cards.get(s.name).node);
      if (ordered.some((node, i) => listNode.children[i] !== node)) listNode.replaceChildren(...ordered);
      if (!services.length) listNode.replaceChildren(el('p', { class: 'empty', text: 'No services are deployed or registered.' }));
      $('services-updated').textContent = `Updated ${new Date().toLocaleTimeString()} · every ${POLL_MS / 1000} s`;
      clearError();
    } catch (e) {
      if (e.name === 'AbortError' || signal.aborted) return;
      showError(e);
    }
    await sleep(POLL_MS, signal).catch(() => {});
  }
};

// ---------------------------------------------------------- versions ----

views.versions = async (signal, parts) => {
  const name = parts[1];
  $('versions-title').textContent = `${name} · versions`;
  $('upload-form').dataset.service = name;
  $('versions-body').replaceChildren();
  $('versions-empty').hidden = true;
  await loadVersions(name, signal);
};

async function loadVersions(name, signal) {
  let versions;
  try {
    ({ versions } = await api(`/services/${enc(name)}/versions`, { signal }));
  } catch (e) {
    if (e.status === 404) $('versions-empty').hidden = false;
    throw e;
  }
  const active = versions.findIndex((v) => v.active);
  const rows = versions.map((v, i) => {
    const action = v.active
      ? el('span', { class: 'muted small', text: 'serving' })
      : el('button', {
        type: 'button',
        'data-testid': 'rollback',
        'aria-label': `${i < active ? 'Roll back' : 'Roll forward'} ${name} to ${shortVersion(v.version)}`,
        onclick: () => rollback(name, v.version, i < active),
      }, i < active ? 'Roll back' : 'Roll forward');
    return el('tr', { 'data-testid': 'version-row', 'data-version': v.version, 'data-active': v.active ? 'true' : 'false' },
      el('td', {}, el('code', { title: v.version, text: shortVersion(v.version) })),
      el('td', { text: dateTime(v.deployed_at) }),
      el('td', { class: 'wrap', text: v.source }),
      el('td', {}, v.active ? el('span', { class: 'badge ok', 'data-testid': 'active-badge', text: 'Active' }) : el('span', { class: 'muted', text: 'inactive' })),
      el('td', { class: 'actions' }, action));
  });
  $('versions-body').replaceChildren(...rows);
  $('versions-empty').hidden = rows.length > 0;
}

async function rollback(name, version, back) {
  const verb = back ? 'Roll back' : 'Roll forward';
  const ok = await confirmAction(`${verb} ${name}?`,
    `${name} will serve ${shortVersion(version)} from its next request on; requests in flight finish on the current version.`,
    verb);
  if (!ok) return;
  try {
    const deployed = await api(`/services/${enc(name)}/rollback`, { method: 'POST', json: { to: version } });
    clearError();
    say(`${deployed.name} now serves ${shortVersion(deployed.version)}.`);
    await loadVersions(name, visit.signal);
  } catch (e) {
    showError(e);
  }
}

async function upload(event) {
  event.preventDefault();
  const name = $('upload-form').dataset.service;
  const file = $('upload-file').files[0];
  if (!file) { showError(new Error('Choose a component file (.wasm) first.')); return; }
  const button = $('upload-form').querySelector('button[type=submit]');
  button.disabled = true;
  clearError();
  say(`Deploying ${file.name}…`);
  try {
    const deployed = await api(`/services/${enc(name)}/versions`, { method: 'POST', body: file, type: 'application/wasm' });
    const routes = deployed.routes?.length ? ` (routes ${deployed.routes.join(', ')})` : '';
    say(`${deployed.name} now serves ${shortVersion(deployed.version)}${routes}.`);
    $('upload-file').value = '';
    await loadVersions(name, visit.signal);
  } catch (e) {
    say('');
    showError(e);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------ events ----

const log = { filters: {}, cursor: '', count: 0, tail: null };

function eventQuery(extra) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(log.filters)) if (v) q.set(k, v);
  if (log.cursor) q.set('cursor', log.cursor);
  q.set('limit', String(PAGE));
  for (const [k, v] of Object.entries(extra ?? {})) q.set(k, v);
  return `/events?${q}`;
}

function eventRow(e, fresh) {
  const trace = e.trace_id
    ? el('button', {
      type: 'button',
      class: 'link mono',
      'data-testid': 'trace-link',
      'data-trace': e.trace_id,
      title: `Follow trace ${e.trace_id}`,
      'aria-label': `Follow trace ${e.trace_id}`,
      onclick: () => { location.hash = `#/events?trace=${enc(e.trace_id)}`; },
    }, `…${e.trace_id.slice(-10)}`)
    : el('span', { class: 'muted', text: '–' });
  return el('tr', {
    class: fresh ? 'fresh' : undefined,
    'data-testid': 'event-row',
    'data-service': e.service,
    'data-trace': e.trace_id,
    'data-level': e.level,
  },
  el('td', { class: 'mono nowrap', title: new Date(e.time_ms).toISOString(), text: clock(e.time_ms) }),
  el('td', {}, el('span', { class: `badge level-${e.level}`, text: e.level })),
  el('td', { class: 'nowrap', text: e.service }),
  el('td', { class: 'message', text: e.message }),
  el('td', {}, trace),
  el('td', { class: 'mono muted small nowrap', title: `hash ${e.hash}`, text: `${e.host}:${e.seq}` }));
}

function appendEvents(events, fresh) {
  const body = $('events-body');
  body.append(...events.map((e) => eventRow(e, fresh)));
  while (body.children.length > MAX_ROWS) body.firstElementChild.remove();
  log.count += events.length;
  $('events-empty').hidden = body.children.length > 0;
  $('events-count').textContent = `${log.count.toLocaleString()} event${log.count === 1 ? '' : 's'} shown`;
}

async function loadEventPage(signal) {
  const { events, cursor } = await api(eventQuery(), { signal });
  log.cursor = cursor;
  appendEvents(events, false);
  $('events-more').hidden = events.length < PAGE || log.tail !== null;
}

function startTail() {
  if (log.tail) return;
  const controller = new AbortController();
  log.tail = controller;
  visit.signal.addEventListener('abort', () => controller.abort(), { once: true });
  $('events-more').hidden = true;
  $('tail-state').textContent = 'Waiting for new events…';
  (async () => {
    while (!controller.signal.aborted) {
      try {
        const { events, cursor } = await api(eventQuery({ wait: String(TAIL_WAIT_S) }), { signal: controller.signal });
        log.cursor = cursor;
        if (events.length) appendEvents(events, true);
        $('tail-state').textContent = `Live · last checked ${new Date().toLocaleTimeString()}`;
      } catch (e) {
        if (controller.signal.aborted) break;
        showError(e);
        if (e.status === 401) break;
        await sleep(POLL_MS, controller.signal).catch(() => {});
      }
    }
  })();
}

function stopTail() {
  log.tail?.abort();
  log.tail = null;
  $('tail-state').textContent = '';
}

views.events = async (signal, parts, params) => {
  log.filters = {
    service: params.get('service') ?? '',
    trace: params.get('trace') ?? '',
    level: params.get('level') ?? '',
  };
  log.cursor = '';
  log.count = 0;
  log.tail = null;
  $('filter-service').value = log.filters.service;
  $('filter-trace').value = log.filters.trace;
  $('filter-level').value = log.filters.level;
  $('events-body').replaceChildren();
  $('events-count').textContent = '';
  $('events-empty').hidden = true;
  const banner = $('trace-banner');
  if (log.filters.trace) {
    banner.replaceChildren(
      el('span', {}, 'Following trace ', el('code', { text: log.filters.trace }), ': every event of that request, in every service it crossed.'),
      el('button', { type: 'button', class: 'ghost small', 'data-testid': 'trace-clear', onclick: () => { location.hash = '#/events'; } }, 'Show all events'));
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  servicesForFilter(signal);
  await loadEventPage(signal);
  if ($('tail-toggle').checked && !signal.aborted) startTail();
};

async function servicesForFilter(signal) {
  try {
    const { services } = await api('/services', { signal });
    const names = ['hms-host', ...services.map((s) => s.name)];
    $('service-names').replaceChildren(...names.map((n) => el('option', { value: n })));
  } catch { /* only suggestions */ }
}

function applyFilters(event) {
  event.preventDefault();
  const q = new URLSearchParams();
  for (const key of ['service', 'trace', 'level']) {
    const value = $(`filter-${key}`).value.trim();
    if (value) q.set(key, value);
  }
  const hash = `#/events${q.size ? `?${q}` : ''}`;
  if (location.hash === hash) route(false);
  else location.hash = hash;
}

// -------------------------------------------------------------- keys ----

views.keys = async (signal) => {
  await loadKeys(signal);
};

async function loadKeys(signal) {
  const { keys } = await api('/keys', { signal });
  $('keys-body').replaceChildren(...keys.map((k) => el('tr', { 'data-testid': 'key-row', 'data-key': k.id, 'data-revoked': k.revoked_at ? 'true' : 'false' },
    el('td', {}, el('code', { text: k.id })),
    el('td', { text: k.service }),
    el('td', { text: dateTime(k.created_at) }),
    el('td', {}, k.revoked_at
      ? el('span', { class: 'badge revoked', title: dateTime(k.revoked_at), text: 'Revoked' })
      : el('span', { class: 'badge ok', text: 'Active' })),
    el('td', { class: 'actions' }, k.revoked_at ? null : el('button', {
      type: 'button',
      class: 'danger',
      'data-testid': 'revoke',
      'aria-label': `Revoke key ${k.id} of ${k.service}`,
      onclick: () => revokeKey(k),
    }, 'Revoke')))));
  $('keys-empty').hidden = keys.length > 0;
}

async function createKey(event) {
  event.preventDefault();
  const service = $('key-service').value.trim();
  if (!service) { showError(new Error('Name the service the key is for.')); $('key-service').focus(); return; }
  try {
    const created = await api('/keys', { method: 'POST', json: { service } });
    $('key-secret-title').textContent = `New API key for ${created.service}`;
    $('key-secret-value').value = created.api_key;
    $('key-secret').hidden = false;
    $('key-secret-value').focus();
    $('key-secret-value').select();
    $('key-service').value = '';
    clearError();
    say(`Created key ${created.id} for ${created.service}.`);
    await loadKeys(visit.signal);
  } catch (e) {
    showError(e);
  }
}

async function copySecret() {
  const input = $('key-secret-value');
  try {
    await navigator.clipboard.writeText(input.value);
    say('Key copied to the clipboard.');
  } catch {
    input.select();
    say('Select and copy the key (Ctrl+C).');
  }
}

function hideSecret() {
  $('key-secret-value').value = '';
  $('key-secret').hidden = true;
  $('key-service').focus();
}

async function revokeKey(key) {
  const ok = await confirmAction(`Revoke key ${key.id}?`,
    `The key of ${key.service} and every token issued from it stop working at once. This cannot be undone.`,
    'Revoke', { danger: true });
  if (!ok) return;
  try {
    await api(`/keys/${enc(key.id)}`, { method: 'DELETE' });
    clearError();
    say(`Revoked key ${key.id}.`);
    await loadKeys(visit.signal);
  } catch (e) {
    showError(e);
  }
}

// ----------------------------------------------------------- cluster ----

views.cluster = async (signal) => {
  while (!signal.aborted) {
    try {
      const { hosts } = await api('/cluster', { signal });
      const single = hosts.length === 1;
      $('cluster-mode').textContent = single ? 'Single host' : `Cluster · ${hosts.length} hosts`;
      $('cluster-note').textContent = single
        ? 'A standalone host lists itself; a host of a cluster lists every host that joined.'
        : 'Every host that joined the cluster, with what it serves.';
      $('cluster-body').replaceChildren(...hosts.map((h) => {
        const here = h.url === location.origin;
        const serves = Object.entries(h.services).map(([name, version]) => el('li', {},
          el('span', { text: name }), ' ', el('code', { title: version, text: shortVersion(version) })));
        const refused = Object.entries(h.refused ?? {}).map(([name, r]) => el('li', { class: 'refused' },
          el('span', { text: `${name} refused ` }), el('code', { title: r.version, text: shortVersion(r.version) }), el('span', { text: `: ${r.error}` })));
        return el('tr', { 'data-testid': 'host-row', 'data-host': h.id },
          el('td', {}, el('code', { text: h.id }), here ? el('span', { class: 'badge', text: 'this host' }) : null),
          el('td', {}, el('code', { text: h.url })),
          el('td', {}, el('span', { class: `badge ${h.alive ? 'ok' : 'revoked'}`, text: h.alive ? 'alive' : 'expired' })),
          el('td', { text: h.last_heartbeat_ms_ago ? `${millis(h.last_heartbeat_ms_ago)} ago` : 'now' }),
          el('td', {}, el('ul', { class: 'plain' }, serves, refused)));
      }));
      clearError();
    } catch (e) {
      if (e.name === 'AbortError' || signal.aborted) return;
      showError(e);
    }
    await sleep(POLL_MS, signal).catch(() => {});
  }
};

// -------------------------------------------------------------- start ----

function start() {
  $('signin-form').addEventListener('submit', signIn);
  $('sign-out').addEventListener('click', signOut);
  $('upload-form').addEventListener('submit', upload);
  $('events-filter').addEventListener('submit', applyFilters);
  $('filter-clear').addEventListener('click', () => { location.hash = '#/events'; });
  $('events-more').addEventListener('click', () => loadEventPage(visit.signal).catch(showError));
  $('tail-toggle').addEventListener('change', (e) => (e.target.checked ? startTail() : stopTail()));
  $('key-form').addEventListener('submit', createKey);
  $('key-secret-copy').addEventListener('click', copySecret);
  $('key-secret-done').addEventListener('click', hideSecret);
  window.addEventListener('hashchange', () => route(true));
  route(false);
}

start();
