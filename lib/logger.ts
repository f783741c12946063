import winston from 'winston';
import type { Logger } from './upstream/client.js';

export type { Logger };

/** The default logger: structured JSON lines at `info` on stderr (stdout stays the host's). */
export function defaultLogger(level = process.env.KLING_RELAY_LOG_LEVEL ?? 'info'): Logger {
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    defaultMeta: { component: 'kling-relay' },
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug', 'verbose', 'silly'] })],
  });
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = { error() {}, warn() {}, info() {}, debug() {} };
