// `log` of @hms/sdk: Core audit logging.
export type Level = 'debug' | 'info' | 'warn' | 'error';
export function event(level: Level, message: string): void;
export function debug(message: string): void;
export function info(message: string): void;
export function warn(message: string): void;
export function error(message: string): void;
