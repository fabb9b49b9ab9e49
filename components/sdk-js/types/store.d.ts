// `store` of @hms/sdk: the service's private durable store.
import type { KeyPage } from '../index.js';

export function get(key: string): Uint8Array | undefined;
export function getText(key: string): string | undefined;
export function getJson<T = any>(key: string): T | undefined;
export function set(key: string, value: Uint8Array | string): void;
export function setJson(key: string, value: unknown): void;
declare function remove(key: string): boolean;
export { remove as delete };
export function keys(prefix?: string, options?: { cursor?: string; limit?: number }): KeyPage;
export function allKeys(prefix?: string, options?: { pageSize?: number }): Generator<string, void, undefined>;
export function compareAndSwap(key: string, expected: Uint8Array | string | null | undefined, value: Uint8Array | string): boolean;
export function increment(key: string, delta?: number | bigint): number;
export function incrementBig(key: string, delta?: number | bigint): bigint;
