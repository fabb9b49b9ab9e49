// `registry` of @hms/sdk: Core service discovery.
import type { Endpoint } from '../index.js';

export function discover(name: string): Endpoint | undefined;
export function register(name: string, host: string, port: number): void;
