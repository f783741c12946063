import type { ServerResponse } from 'node:http';
import type { CreateDelivery } from './faults.js';
import { sendData } from './http.js';

/** Sends a create's answer, or sabotages it as the fault switch says (the task exists either way). */
export function answerCreate(hung: Set<ServerResponse>, res: ServerResponse, data: unknown, delivery: CreateDelivery | undefined): void {
  if (delivery?.kind === 'reset') {
    res.socket?.destroy();
    return;
  }
  if (delivery?.kind === 'error') throw delivery.error;
  if (delivery?.kind === 'hang') {
    hung.add(res);
    res.once('close', () => hung.delete(res));
    if (delivery.ms !== undefined) {
      const timer = setTimeout(() => sendData(res, data), delivery.ms);
      timer.unref();
      res.once('close', () => clearTimeout(timer));
    }
    return;
  }
  sendData(res, data);
}

/** Kling refuses `data:...;base64,` prefixes on media fields; this finds one anywhere in the body. */
export function carriesDataUri(value: unknown): boolean {
  if (typeof value === 'string') return value.startsWith('data:') && value.includes(';base64,');
  if (Array.isArray(value)) return value.some(carriesDataUri);
  if (typeof value === 'object' && value !== null) return Object.values(value).some(carriesDataUri);
  return false;
}
