// Core audit logging (`hms:core/logging`). The host stamps sequence number,
// time, service and trace id; an event is durable before the response of
// the request that logged it leaves.

import { core } from './core.js';

const LEVELS = ['debug', 'info', 'warn', 'error'];

/**
 * Append an event to the audit log.
 * @param {'debug'|'info'|'warn'|'error'} level
 * @param {string} message
 */
export function event(level, message) {
  if (!LEVELS.includes(level)) throw new RangeError(`unknown log level ${JSON.stringify(level)}`);
  core().logging.logEvent(level, String(message));
}

/** @param {string} message */
export const debug = (message) => event('debug', message);
/** @param {string} message */
export const info = (message) => event('info', message);
/** @param {string} message */
export const warn = (message) => event('warn', message);
/** @param {string} message */
export const error = (message) => event('error', message);
