// Types of @hms/sdk (hand-written; checked by `npm run typecheck`).

// ------------------------------------------------------------------ routing

/** What a route's pattern matched, and the request's path and query. */
export interface Context {
  /** The segments `{name}` matched, by name. */
  params: Record<string, string>;
  /** What a trailing `/...` matched, without its leading `/`; `undefined` without one. */
  rest: string | undefined;
  /** The path without the query, as sent. */
  path: string;
  /** The query string's parameters. */
  readonly query: URLSearchParams;
  /** The body as JSON; an HttpError 400 `bad_request` if it is not JSON. */
  json<T = any>(): Promise<T>;
  /** The body as text; an HttpError 400 if it cannot be read. */
  text(): Promise<string>;
}

/** A JSON-encodable value a handler may return (sent as JSON, 200). */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json | undefined } | object;

/**
 * A handler: a `Response`, a value sent as JSON 200, or `undefined` for 204.
 * Throw an `HttpError` to answer with the error shape.
 */
export type Handler = (req: Request, ctx: Context) => Response | Json | undefined | void | Promise<Response | Json | undefined | void>;

export type Match =
  | { status: 200; handler: Handler; params: Record<string, string>; rest: string | undefined }
  | { status: 404 }
  | { status: 405; allow: string[] };

/** Handlers by method and path pattern (`/a/{id}`, `/files/...`), with the Rust SDK's rules. */
export class Router {
  route(method: string, pattern: string, handler: Handler): this;
  get(pattern: string, handler: Handler): this;
  head(pattern: string, handler: Handler): this;
  post(pattern: string, handler: Handler): this;
  put(pattern: string, handler: Handler): this;
  delete(pattern: string, handler: Handler): this;
  patch(pattern: string, handler: Handler): this;
  /** What a request for `method` and `path` (no query) finds. */
  match(method: string, path: string): Match;
  /** The best route's answer, or the 404 / 405; a handler's error is thrown on. */
  handle(req: Request): Promise<Response>;
}

export interface ServiceOptions {
  /** 1-64 characters of `a-z`, `0-9` and `-`: what other services discover it by. */
  name: string;
  /** Host-level routes: `/exact` or `/prefix/...`; default `['/<name>/...']`. */
  routes?: string[];
  /** Services allowed to call this one through the host; `null`/omitted for any. */
  callers?: string[] | null;
}

export interface ServiceInfo {
  name: string;
  routes: string[];
}

/** A Router plus the manifest; `export default` one from app.js. */
export class Service extends Router {
  constructor(options: ServiceOptions);
  readonly name: string;
  describe(): ServiceInfo;
  callers(): string[] | undefined;
  /** Never rejects: HttpError → its response; anything else → 500 `internal` + one error event. */
  handle(req: Request): Promise<Response>;
}

export function service(options: ServiceOptions): Service;

/** A handler's return value as a response. */
export function toResponse(value: unknown): Response;

// ------------------------------------------------------------------ HTTP helpers

/** `value` as JSON with `content-type: application/json`; `init` is a status or a ResponseInit. */
export function json(value: unknown, init?: number | ResponseInit): Response;
/** `{"code","message"}` with `status`. */
export function error(status: number, code: string, message: string): Response;
/** The body as JSON; HttpError 400 `invalid JSON body: ...`. */
export function readJson<T = any>(req: Request): Promise<T>;
/** The body as text; HttpError 400 if it cannot be read. */
export function readText(req: Request): Promise<string>;
/** The token of `Authorization: Bearer <token>`. */
export function bearerToken(req: Request): string | undefined;
/** The path of a URL without query or fragment, not decoded. */
export function pathOf(url: string): string;
/** A base URL (its path kept as a prefix) joined with a path. */
export function joinUrl(base: string, path: string): string;

// ------------------------------------------------------------------ errors

/** Thrown from a handler: the response `{"code","message"}` with `status`, no event. */
export class HttpError extends Error {
  constructor(status: number, code: string, message: string, options?: { headers?: HeadersInit; cause?: unknown });
  readonly status: number;
  readonly code: string;
  readonly headers: HeadersInit | undefined;
  toResponse(): Response;
}

export class HmsError extends Error {}
export class CoreMissingError extends HmsError {}

export class StoreError extends HmsError {
  readonly kind: 'invalid-key' | 'value-too-large' | 'quota-exceeded' | 'not-a-number' | 'unavailable' | 'decode' | 'store-error';
  /** identity-service's mapping: 503 / 413 / 507, else 500. */
  toHttpError(): HttpError;
}
export class InvalidKeyError extends StoreError {
  constructor(reason: string);
  readonly reason: string;
}
export class ValueTooLargeError extends StoreError {
  constructor(limit: number);
  readonly limit: number;
}
export class QuotaExceededError extends StoreError {
  constructor(quota: number);
  readonly quota: number;
}
export class NotANumberError extends StoreError {}
export class StoreUnavailableError extends StoreError {
  constructor(reason: string);
  readonly reason: string;
}
export class StoreDecodeError extends StoreError {
  readonly key: string;
}

export class AuthError extends HmsError {
  constructor(kind: AuthError['kind'], reason?: string);
  readonly kind: 'invalid-key' | 'revoked' | 'expired' | 'invalid-token';
  readonly reason: string | undefined;
}

export class RegistryError extends HmsError {
  readonly kind: 'invalid-name' | 'name-taken' | 'invalid-address';
  readonly reason: string;
}

/** A call that got no response; an answer (503 / 502) when uncaught. */
export class CallError extends HttpError {
  readonly service: string;
}
/** 503 `dependency_unavailable`. */
export class ServiceNotFoundError extends CallError {
  constructor(service: string);
}
/** 502 `upstream_error`. */
export class CallFailedError extends CallError {
  constructor(service: string, cause: unknown);
}

// ------------------------------------------------------------------ Core

export interface Claims {
  subject: string;
  keyId: string;
  issuedAt: number;
  expiresAt: number;
}

export interface Endpoint {
  name: string;
  url: string;
  host: string;
  port: number;
  version: string;
}

export interface KeyPage {
  keys: string[];
  /** The cursor of the next page; `undefined` on the last. */
  next: string | undefined;
}

export * as store from './types/store.js';
export * as log from './types/log.js';
export * as auth from './types/auth.js';
export * as registry from './types/registry.js';

export interface CallOptions {
  /** Default POST with a body, else GET. */
  method?: string;
  /** Sent as JSON (`content-type: application/json`). */
  json?: unknown;
  body?: BodyInit;
  headers?: HeadersInit;
}

/** Call another service by name with this service's own token. */
export function call(service: string, path: string, options?: CallOptions): Promise<Response>;

/** The raw Core the SDK calls: the WIT bindings inside hms-host, a stand-in in tests. */
export interface RawCore {
  auth: { authenticate(apiKey: string): string; ownToken(): string; verify(token: string): { subject: string; keyId: string; issuedAt: bigint; expiresAt: bigint } };
  logging: { logEvent(level: string, message: string): void };
  registry: { registerService(name: string, host: string, port: number): void; discoverService(name: string): Endpoint | undefined };
  store: {
    get(key: string): Uint8Array | undefined;
    set(key: string, value: Uint8Array): void;
    delete(key: string): boolean;
    listKeys(prefix: string, cursor: string | undefined, limit: number): { keys: string[]; next?: string };
    compareAndSwap(key: string, expected: Uint8Array | undefined, value: Uint8Array): boolean;
    increment(key: string, delta: bigint): bigint;
  };
  fetch?: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>;
}

/** Install the Core the SDK calls; returns the one before. */
export function installCore(core: RawCore | null): RawCore | null;
