// Typed errors of @hms/sdk.
//
// Two kinds of failure reach a handler:
//
// * `HttpError` (and its subclasses, such as the `CallError`s): an answer.
//   Thrown from a handler it becomes the JSON response
//   `{"code": "...", "message": "..."}` with its status; nothing is logged.
// * Everything else (a `StoreError`, an `AuthError`, a `TypeError`...): a
//   bug or an outage. Thrown from a handler it becomes a 500
//   `{"code":"internal","message":"internal error"}` and ONE error event in
//   the audit log, with the stack. Catch it to answer otherwise
//   (`StoreError#toHttpError()` gives identity-service's mapping).

/** An error a handler throws to answer with `{"code","message"}`. */
export class HttpError extends Error {
  /**
   * @param {number} status HTTP status, 100-599
   * @param {string} code stable snake_case identifier, e.g. `not_found`
   * @param {string} message for people
   * @param {{headers?: HeadersInit, cause?: unknown}} [options]
   */
  constructor(status, code, message, options = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (!Number.isInteger(status) || status < 100 || status > 599) {
      throw new RangeError(`HttpError status must be an integer 100-599, not ${status}`);
    }
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.headers = options.headers;
  }

  /** The error as a JSON response. */
  toResponse() {
    const headers = new Headers(this.headers);
    headers.set('content-type', 'application/json');
    return new Response(JSON.stringify({ code: this.code, message: this.message }), {
      status: this.status,
      headers,
    });
  }
}

/** Base class of the errors Core calls throw. */
export class HmsError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Core is not there: running on plain Node without `@hms/sdk/testing`. */
export class CoreMissingError extends HmsError {
  constructor() {
    super(
      'hms Core is not available: run inside hms-host, or install a stand-in ' +
        "with useFakeCore() from '@hms/sdk/testing'",
    );
  }
}

// ---------------------------------------------------------------- store

/** Why a store call failed (WIT `store-error`); see the subclasses. */
export class StoreError extends HmsError {
  /** The WIT case, e.g. `invalid-key`. */
  get kind() {
    return 'store-error';
  }

  /**
   * identity-service's mapping to an answer: unavailable 503
   * `store_unavailable`, value too large 413 `payload_too_large`, quota 507
   * `insufficient_storage`, anything else 500 `internal`.
   * @returns {HttpError}
   */
  toHttpError() {
    return new HttpError(500, 'internal', `store failed: ${this.message}`, { cause: this });
  }
}

/** The key is empty or longer than the service's key limit. */
export class InvalidKeyError extends StoreError {
  constructor(reason) {
    super(`invalid key: ${reason}`);
    this.reason = reason;
  }
  get kind() {
    return 'invalid-key';
  }
}

/** The value is longer than the service's value limit. */
export class ValueTooLargeError extends StoreError {
  constructor(limit) {
    super(`value over the limit of ${limit} bytes`);
    /** The limit in bytes. */
    this.limit = limit;
  }
  get kind() {
    return 'value-too-large';
  }
  toHttpError() {
    return new HttpError(413, 'payload_too_large', `a value may have at most ${this.limit} bytes`, {
      cause: this,
    });
  }
}

/** The write would take the service over its total quota. */
export class QuotaExceededError extends StoreError {
  constructor(quota) {
    super(`the store's quota of ${quota} bytes would be exceeded`);
    /** The quota in bytes. */
    this.quota = quota;
  }
  get kind() {
    return 'quota-exceeded';
  }
  toHttpError() {
    return new HttpError(507, 'insufficient_storage', `the store is full (${this.quota} bytes)`, {
      cause: this,
    });
  }
}

/** `increment` found a value that is not a decimal integer, or the sum overflows. */
export class NotANumberError extends StoreError {
  constructor() {
    super('the value is not a decimal integer, or the sum overflows');
  }
  get kind() {
    return 'not-a-number';
  }
}

/** The host could not read or write the database. */
export class StoreUnavailableError extends StoreError {
  constructor(reason) {
    super(`store unavailable: ${reason}`);
    this.reason = reason;
  }
  get kind() {
    return 'unavailable';
  }
  toHttpError() {
    return new HttpError(503, 'store_unavailable', `store unavailable: ${this.reason}`, {
      cause: this,
    });
  }
}

/** `store.getJson` found a value that is not JSON. */
export class StoreDecodeError extends StoreError {
  constructor(key, cause) {
    super(`the value at ${JSON.stringify(key)} is not valid JSON: ${cause.message}`, { cause });
    this.key = key;
  }
  get kind() {
    return 'decode';
  }
}

/** @param {{tag: string, val?: unknown}} e */
export function storeErrorOf(e) {
  switch (e.tag) {
    case 'invalid-key':
      return new InvalidKeyError(String(e.val));
    case 'value-too-large':
      return new ValueTooLargeError(Number(e.val));
    case 'quota-exceeded':
      return new QuotaExceededError(Number(e.val));
    case 'not-a-number':
      return new NotANumberError();
    case 'unavailable':
      return new StoreUnavailableError(String(e.val));
    default:
      return new StoreUnavailableError(`unknown store error ${JSON.stringify(e.tag)}`);
  }
}

// ---------------------------------------------------------------- auth

/** Why authentication or verification failed (WIT `auth-error`). */
export class AuthError extends HmsError {
  /**
   * @param {'invalid-key'|'revoked'|'expired'|'invalid-token'} kind
   * @param {string} [reason] for `invalid-token`
   */
  constructor(kind, reason) {
    super(authMessage(kind, reason));
    this.kind = kind;
    this.reason = reason;
  }
}

function authMessage(kind, reason) {
  switch (kind) {
    case 'invalid-key':
      return 'invalid API key';
    case 'revoked':
      return 'key revoked';
    case 'expired':
      return 'token expired';
    case 'invalid-token':
      return `invalid token: ${reason}`;
    default:
      return `authentication failed: ${kind}`;
  }
}

/** @param {{tag: string, val?: unknown}} e */
export function authErrorOf(e) {
  return new AuthError(/** @type {any} */ (e.tag), e.val === undefined ? undefined : String(e.val));
}

// ---------------------------------------------------------------- registry

/** Why `registry.register` failed (WIT `registry-error`). */
export class RegistryError extends HmsError {
  /**
   * @param {'invalid-name'|'name-taken'|'invalid-address'} kind
   * @param {string} reason
   */
  constructor(kind, reason) {
    super(`${kind}: ${reason}`);
    this.kind = kind;
    this.reason = reason;
  }
}

// ---------------------------------------------------------------- calls

/**
 * A call to another service that got no response. These are answers, as in
 * report-service: uncaught, the client gets the 503 or 502.
 */
export class CallError extends HttpError {
  constructor(status, code, message, service, options) {
    super(status, code, message, options);
    /** The service that was called. */
    this.service = service;
  }
}

/** The service is not registered: 503 `dependency_unavailable`. */
export class ServiceNotFoundError extends CallError {
  constructor(service) {
    super(503, 'dependency_unavailable', `${service} is not registered`, service);
  }
}

/** The request was sent but no response came back: 502 `upstream_error`. */
export class CallFailedError extends CallError {
  constructor(service, cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    super(502, 'upstream_error', `calling ${service} failed: ${why}`, service, { cause });
  }
}
