// Types of @hms/sdk/testing: the Core stand-in for node --test.
import type { RawCore, Service } from './index.js';

export class ComponentError extends Error {
  constructor(tag: string, val?: unknown);
  readonly payload: { tag: string; val?: unknown };
}

export interface StoreLimits {
  maxKeyBytes?: number;
  maxValueBytes?: number;
  quota?: number;
}

export class FakeStore {
  constructor(limits?: StoreLimits);
  readonly limits: Required<StoreLimits>;
  readonly data: Map<string, Uint8Array>;
  used: number;
  /** Set to a reason to make every call fail with `unavailable`. */
  unavailable: string | undefined;
  get(key: string): Uint8Array | undefined;
  set(key: string, value: Uint8Array): void;
  delete(key: string): boolean;
  listKeys(prefix: string, cursor: string | undefined, limit: number): { keys: string[]; next?: string };
  compareAndSwap(key: string, expected: Uint8Array | undefined, value: Uint8Array): boolean;
  increment(key: string, delta: bigint): bigint;
  /** Every record, values decoded as UTF-8, in key order. */
  dump(): Record<string, string>;
}

export interface LogEvent {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
}

export class FakeLog {
  readonly events: LogEvent[];
  logEvent(level: string, message: string): void;
  at(level: LogEvent['level']): LogEvent[];
  clear(): void;
}

export class FakeAuth {
  constructor(service: string, options?: { ttl?: number; now?: () => number });
  /** A valid token for `subject`. */
  issue(subject: string, options?: { keyId?: string; ttl?: number }): string;
  /** A token that has expired. */
  expired(subject: string): string;
  /** A new API key for `subject`. */
  createKey(subject: string): string;
  revokeKey(apiKey: string): void;
  authenticate(apiKey: string): string;
  ownToken(): string;
  verify(token: string): { subject: string; keyId: string; issuedAt: bigint; expiresAt: bigint };
}

export class FakeRegistry {
  constructor(url: string);
  add(name: string, url?: string): void;
  registerService(name: string, host: string, port: number): void;
  discoverService(name: string): { name: string; url: string; host: string; port: number; version: string } | undefined;
}

export type MountedHandler = (req: Request) => Response | Promise<Response>;

export interface FakeCore extends RawCore {
  readonly service: string;
  readonly url: string;
  readonly store: FakeStore;
  readonly logging: FakeLog;
  readonly auth: FakeAuth;
  readonly registry: FakeRegistry;
  /** Requests `call()` sent, in order (clones, bodies unread). */
  readonly sent: Request[];
  /** The audit log's events. */
  readonly events: LogEvent[];
  /** A stand-in for another service that `call()` reaches. */
  mount(name: string, app: Service | MountedHandler, options?: { routes?: string[]; callers?: string[] }): FakeCore;
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
}

export interface FakeCoreOptions {
  /** This service's name (default `test-service`). */
  service?: string;
  /** The fake host's base URL (default `http://hms.test`). */
  url?: string;
  store?: StoreLimits;
  ttl?: number;
  now?: () => number;
}

export function fakeCore(options?: FakeCoreOptions): FakeCore;
/** Install a fresh fake Core and return it. */
export function useFakeCore(options?: FakeCoreOptions): FakeCore;

export interface RequestOptions {
  json?: unknown;
  body?: BodyInit;
  headers?: HeadersInit;
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  base?: string;
}

/** A request as the host delivers it. */
export function request(method: string, path: string, options?: RequestOptions): Request;

/** A response's status, headers, text and (JSON) body. */
export function read(res: Response): Promise<{ status: number; headers: Headers; body: any; text: string }>;
