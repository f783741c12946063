import type { Logger } from '../../lib/logger.js';

export interface Line {
  level: 'error' | 'warn' | 'info' | 'debug';
  message: string;
  meta: Record<string, unknown>;
}

/** A logger that records every call, as a host's winston logger would receive it. */
export function recordingLogger(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const at = (level: Line['level']) => (message: string, meta?: object) => {
    lines.push({ level, message, meta: { ...(meta ?? {}) } as Record<string, unknown> });
  };
  return { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug') };
}
