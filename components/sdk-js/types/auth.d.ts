// `auth` of @hms/sdk: Core authentication.
import type { Claims } from '../index.js';

export function ownToken(): string;
export function authenticate(apiKey: string): string;
export function verify(token: string): Claims;
/** The request's bearer token's claims; HttpError 401 `unauthorized` otherwise. */
export function verifyRequest(req: Request): Claims;
export function bearerToken(req: Request): string | undefined;
