// Core authentication (`hms:core/auth`): tokens for this service and for
// API keys, and checks of the tokens callers bring.

import { core, witCall } from './core.js';
import { AuthError, HttpError, authErrorOf } from './errors.js';
import { bearerToken } from './http.js';

/**
 * @typedef {object} Claims
 * @property {string} subject the service (or outside client) the token was issued to
 * @property {string} keyId the API key it came from, or `workload`
 * @property {number} issuedAt seconds since the Unix epoch
 * @property {number} expiresAt seconds since the Unix epoch
 */

/** A token for this service's own identity (no secret needed). */
export function ownToken() {
  return core().auth.ownToken();
}

/**
 * Exchange an API key for a token; AuthError if the key is unknown or revoked.
 * @param {string} apiKey
 */
export function authenticate(apiKey) {
  return witCall(() => core().auth.authenticate(apiKey), authErrorOf);
}

/**
 * Check a token's signature and lifetime; its claims, or AuthError.
 * @param {string} token
 * @returns {Claims}
 */
export function verify(token) {
  const c = witCall(() => core().auth.verify(token), authErrorOf);
  return {
    subject: c.subject,
    keyId: c.keyId,
    issuedAt: Number(c.issuedAt),
    expiresAt: Number(c.expiresAt),
  };
}

/**
 * The claims of the request's `Authorization: Bearer` token; an HttpError
 * 401 `unauthorized` without a valid one (identity-service's messages).
 * @param {Request} req
 * @returns {Claims}
 */
export function verifyRequest(req) {
  const token = bearerToken(req);
  if (token === undefined) {
    throw new HttpError(401, 'unauthorized', 'missing or malformed Authorization: Bearer header');
  }
  try {
    return verify(token);
  } catch (e) {
    if (e instanceof AuthError) throw new HttpError(401, 'unauthorized', e.message, { cause: e });
    throw e;
  }
}

export { bearerToken };
