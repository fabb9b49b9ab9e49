// A pure-JS stand-in for Core, so a service's handlers run on plain Node
// (`node --test`) without building a component:
//
//   import { useFakeCore, request } from '@hms/sdk/testing';
//   import app from '../app.js';
//   const core = useFakeCore({ service: 'notice-service' });
//   const res = await app.handle(request('GET', '/notices'));
//
// The stand-in has the shape of the WIT bindings inside hms-host (errors
// thrown with a `payload` `{tag, val}`, `undefined` for none, BigInt for
// s64/u64) and the host's semantics: key and value limits, the quota, keys
// in byte order with the same paging and cursor rules, decimal `increment`
// with overflow checks, atomic compare-and-swap. Other services are
// stand-ins too: `core.mount(name, appOrHandler)` registers one that
// `call()` reaches, with its caller policy applied.

import { installCore } from './core.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** The error the WIT bindings throw for a `result`'s error case. */
export class ComponentError extends Error {
  constructor(tag, val) {
    const payload = val === undefined ? { tag } : { tag, val };
    super(`${tag}${val === undefined ? '' : `: ${val}`} (see error.payload)`);
    this.name = 'ComponentError';
    Object.defineProperty(this, 'payload', { value: payload, enumerable: true });
  }
}

/** @param {string} a @param {string} b byte (UTF-8) order, as the host's databases sort keys */
function compareBytes(a, b) {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;

/** The host's store, in memory: same limits, order, paging and errors. */
export class FakeStore {
  /**
   * @param {{maxKeyBytes?: number, maxValueBytes?: number, quota?: number}} [limits]
   * defaults: the host's (1024, 1 MiB, 64 MiB)
   */
  constructor({ maxKeyBytes = 1024, maxValueBytes = 1 << 20, quota = 64 << 20 } = {}) {
    this.limits = { maxKeyBytes, maxValueBytes, quota };
    /** @type {Map<string, Uint8Array>} */
    this.data = new Map();
    this.used = 0;
    /** Set to a string to make every call fail with `unavailable(<string>)`. */
    this.unavailable = undefined;
  }

  #check(key) {
    if (this.unavailable !== undefined) throw new ComponentError('unavailable', this.unavailable);
    if (key === '') throw new ComponentError('invalid-key', 'empty');
    const n = encoder.encode(key).length;
    if (n > this.limits.maxKeyBytes) {
      throw new ComponentError('invalid-key', `${n} bytes; at most ${this.limits.maxKeyBytes} are allowed`);
    }
  }

  #checkValue(value) {
    if (!(value instanceof Uint8Array)) throw new TypeError('a value is a Uint8Array');
    if (value.length > this.limits.maxValueBytes) {
      throw new ComponentError('value-too-large', BigInt(this.limits.maxValueBytes));
    }
  }

  #size(key, value) {
    return value === undefined ? 0 : encoder.encode(key).length + value.length;
  }

  /** Store if the quota allows it (or the write does not grow the store). */
  #store(key, value) {
    const next = this.used - this.#size(key, this.data.get(key)) + this.#size(key, value);
    if (next > this.limits.quota && next > this.used) {
      throw new ComponentError('quota-exceeded', BigInt(this.limits.quota));
    }
    this.used = next;
    this.data.set(key, Uint8Array.from(value));
  }

  get(key) {
    this.#check(key);
    const value = this.data.get(key);
    return value === undefined ? undefined : Uint8Array.from(value);
  }

  set(key, value) {
    this.#check(key);
    this.#checkValue(value);
    this.#store(key, value);
  }

  delete(key) {
    this.#check(key);
    const old = this.data.get(key);
    if (old === undefined) return false;
    this.used -= this.#size(key, old);
    this.data.delete(key);
    return true;
  }

  listKeys(prefix, cursor, limit) {
    if (this.unavailable !== undefined) throw new ComponentError('unavailable', this.unavailable);
    if (!(limit >= 1 && limit <= 1000)) {
      throw new ComponentError('invalid-key', `limit ${limit}: pages hold 1 to 1000 keys`);
    }
    // A cursor before the prefix cannot widen the listing.
    const after = cursor !== undefined && compareBytes(cursor, prefix) >= 0 ? cursor : undefined;
    const sorted = [...this.data.keys()].sort(compareBytes);
    const keys = [];
    let more = false;
    for (const key of sorted) {
      if (after !== undefined ? compareBytes(key, after) <= 0 : compareBytes(key, prefix) < 0) continue;
      if (!key.startsWith(prefix)) break;
      if (keys.length === limit) {
        more = true;
        break;
      }
      keys.push(key);
    }
    return more ? { keys, next: keys[keys.length - 1] } : { keys };
  }

  compareAndSwap(key, expected, value) {
    this.#check(key);
    this.#checkValue(value);
    const current = this.data.get(key);
    const same =
      current === undefined || expected === undefined
        ? current === expected
        : current.length === expected.length && current.every((b, i) => b === expected[i]);
    if (!same) return false;
    this.#store(key, value);
    return true;
  }

  increment(key, delta) {
    this.#check(key);
    const current = this.data.get(key);
    let base = 0n;
    if (current !== undefined) {
      let text;
      try {
        text = decoder.decode(current).trim();
      } catch {
        throw new ComponentError('not-a-number');
      }
      if (!/^[+-]?[0-9]+$/.test(text)) throw new ComponentError('not-a-number');
      base = BigInt(text);
      if (base < I64_MIN || base > I64_MAX) throw new ComponentError('not-a-number');
    }
    const sum = base + BigInt(delta);
    if (sum < I64_MIN || sum > I64_MAX) throw new ComponentError('not-a-number');
    this.#store(key, encoder.encode(sum.toString()));
    return sum;
  }

  /** Every record as `{key: text}` (values decoded as UTF-8), in key order. */
  dump() {
    const out = {};
    for (const key of [...this.data.keys()].sort(compareBytes)) {
      out[key] = new TextDecoder().decode(this.data.get(key));
    }
    return out;
  }
}

/** The audit log: every event, in order. */
export class FakeLog {
  constructor() {
    /** @type {{level: string, message: string}[]} */
    this.events = [];
  }
  logEvent(level, message) {
    this.events.push({ level, message });
  }
  /** @param {string} level */
  at(level) {
    return this.events.filter((e) => e.level === level);
  }
  clear() {
    this.events.length = 0;
  }
}

/** Tokens and API keys, in memory. Tokens are opaque strings of this fake. */
export class FakeAuth {
  /**
   * @param {string} service this service's name (the subject of ownToken)
   * @param {{ttl?: number, now?: () => number}} [options] ttl in seconds (900); now in seconds
   */
  constructor(service, { ttl = 900, now = () => Math.floor(Date.now() / 1000) } = {}) {
    this.service = service;
    this.ttl = ttl;
    this.now = now;
    this.serial = 0;
    /** @type {Map<string, {subject: string, keyId: string, issuedAt: number, expiresAt: number}>} */
    this.tokens = new Map();
    /** @type {Map<string, {subject: string, id: string, revoked: boolean}>} */
    this.keys = new Map();
  }

  /**
   * A valid token for `subject` (as `hms-host token` would give an outside
   * client), e.g. `core.auth.issue('notice-admin')`.
   * @param {string} subject
   * @param {{keyId?: string, ttl?: number}} [options]
   */
  issue(subject, { keyId = 'fake-key', ttl = this.ttl } = {}) {
    const issuedAt = this.now();
    const token = `fake.${Buffer.from(subject).toString('base64url')}.${++this.serial}`;
    this.tokens.set(token, { subject, keyId, issuedAt, expiresAt: issuedAt + ttl });
    return token;
  }

  /** A token that has already expired. @param {string} subject */
  expired(subject) {
    return this.issue(subject, { ttl: -1 });
  }

  /** A new API key for `subject` (as `hms-host keys create`). @param {string} subject */
  createKey(subject) {
    const id = `key${this.keys.size + 1}`;
    const apiKey = `hms_${id}_secret`;
    this.keys.set(apiKey, { subject, id, revoked: false });
    return apiKey;
  }

  /** Revoke an API key and every token issued from it. @param {string} apiKey */
  revokeKey(apiKey) {
    const key = this.keys.get(apiKey);
    if (key) key.revoked = true;
  }

  authenticate(apiKey) {
    const key = this.keys.get(apiKey);
    if (key === undefined) throw new ComponentError('invalid-key');
    if (key.revoked) throw new ComponentError('revoked');
    return this.issue(key.subject, { keyId: key.id });
  }

  ownToken() {
    return this.issue(this.service, { keyId: 'workload' });
  }

  verify(token) {
    if (!/^fake\.[A-Za-z0-9_-]*\.[0-9]+$/.test(token)) throw new ComponentError('invalid-token', 'malformed token');
    const claims = this.tokens.get(token);
    if (claims === undefined) throw new ComponentError('invalid-token', 'unknown signing key');
    const key = [...this.keys.values()].find((k) => k.id === claims.keyId);
    if (key?.revoked) throw new ComponentError('revoked');
    if (claims.expiresAt <= this.now()) throw new ComponentError('expired');
    return {
      subject: claims.subject,
      keyId: claims.keyId,
      issuedAt: BigInt(claims.issuedAt),
      expiresAt: BigInt(claims.expiresAt),
    };
  }
}

/** The registry: this service and every mounted stand-in, at one host URL. */
export class FakeRegistry {
  /** @param {string} url the fake host's base URL */
  constructor(url) {
    this.url = url;
    /** @type {Map<string, {name: string, url: string, host: string, port: number, version: string}>} */
    this.services = new Map();
  }

  add(name, url = this.url) {
    const u = new URL(url);
    this.services.set(name, {
      name,
      url,
      host: u.hostname,
      port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)),
      version: 'fake',
    });
  }

  registerService(name, host, port) {
    if (!/^[a-z0-9-]{1,64}$/.test(name)) throw new ComponentError('invalid-name', name);
    if (host === '' || port === 0) throw new ComponentError('invalid-address', `${host}:${port}`);
    this.services.set(name, { name, url: `http://${host}:${port}`, host, port, version: 'external' });
  }

  discoverService(name) {
    const e = this.services.get(name);
    return e === undefined ? undefined : { ...e };
  }
}

function errorResponse(status, code, message) {
  return new Response(JSON.stringify({ code, message }), {
    status,
    headers: { 'content-type': 'application/json' },
  });
}

/** Does a manifest route (`/exact` or `/prefix/...`) serve `path`? */
function serves(route, path) {
  if (route.endsWith('/...')) {
    const prefix = route.slice(0, -4);
    return path === prefix || path.startsWith(prefix + '/') || (prefix === '' && path.startsWith('/'));
  }
  return path === route;
}

/**
 * A fresh stand-in for Core, for the service `service`.
 * @param {{service?: string, url?: string, store?: ConstructorParameters<typeof FakeStore>[0],
 *   ttl?: number, now?: () => number}} [options]
 */
export function fakeCore({ service = 'test-service', url = 'http://hms.test', store, ttl, now } = {}) {
  const registry = new FakeRegistry(url);
  registry.add(service);
  /** @type {{name: string, routes: string[], callers: string[] | undefined, handle: (req: Request) => Promise<Response> | Response}[]} */
  const mounted = [];
  const fake = {
    service,
    url,
    store: new FakeStore(store),
    logging: new FakeLog(),
    auth: new FakeAuth(service, { ttl, now }),
    registry,
    /** Requests that `call()` sent, in order. @type {Request[]} */
    sent: [],
    /** The audit log's events (shorthand for `logging.events`). */
    get events() {
      return fake.logging.events;
    },
    /**
     * Make a stand-in for another service reachable by `call()`: a Service
     * (its manifest and caller policy apply) or a function `(req) =>
     * Response`, served under `routes` (default `/<name>/...`).
     */
    mount(name, app, { routes, callers } = {}) {
      const isService = app && typeof app.handle === 'function';
      mounted.push({
        name,
        routes: routes ?? (isService ? app.describe().routes : [`/${name}/...`]),
        callers: callers ?? (isService ? app.callers() : undefined),
        handle: isService ? (req) => app.handle(req) : app,
      });
      registry.add(name);
      return fake;
    },
    /** The host's dispatch of an outgoing request: in-process to a mounted stand-in. */
    async fetch(input, init) {
      const req = new Request(input, init);
      fake.sent.push(req.clone());
      const target = new URL(req.url);
      if (target.origin !== new URL(url).origin) {
        throw new TypeError(`fetch failed: ${target.origin} is not reachable from the fake host`);
      }
      const path = target.pathname;
      const callee = mounted.find((m) => m.routes.some((r) => serves(r, path)));
      if (callee === undefined) return errorResponse(404, 'not_found', `no service serves ${path}`);
      if (callee.callers !== undefined && !callee.callers.includes(service)) {
        return errorResponse(403, 'forbidden', `${service} may not call ${callee.name}`);
      }
      return await callee.handle(req);
    },
  };
  return fake;
}

/**
 * Install a fresh fake Core for the SDK's calls and return it.
 * @param {Parameters<typeof fakeCore>[0]} [options]
 */
export function useFakeCore(options) {
  const fake = fakeCore(options);
  installCore(fake);
  return fake;
}

/**
 * A request as the host delivers it, for `app.handle(...)`.
 * @param {string} method
 * @param {string} path path and query, e.g. `/notices?limit=2`
 * @param {{json?: unknown, body?: BodyInit, headers?: HeadersInit, token?: string, base?: string}} [options]
 */
export function request(method, path, { json, body, headers, token, base = 'http://hms.test' } = {}) {
  const h = new Headers(headers);
  if (json !== undefined) {
    body = JSON.stringify(json);
    if (!h.has('content-type')) h.set('content-type', 'application/json');
  }
  if (token !== undefined) h.set('authorization', `Bearer ${token}`);
  return new Request(base + path, { method, headers: h, body });
}

/**
 * A response's status, headers and body (parsed as JSON when it is JSON).
 * @param {Response} res
 */
export async function read(res) {
  const text = await res.text();
  let body = text;
  if ((res.headers.get('content-type') ?? '').startsWith('application/json')) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body, text };
}
