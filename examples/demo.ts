/**
 * The demo host (`npm start`): a small API-relay host app with kling-relay mounted, written the way an
 * integrator would write one (the code is in lib/demo-host.ts, so that `kling-relay serve` runs it from
 * the installed package too). It keeps its data in SQLite under `.demo/`, seeds one user with a
 * balance, an API token and a Kling-style access/secret key pair (once; later starts reuse them),
 * mounts the relay at /kling behind a check that takes either the token or a Kling JWT, and uses the bundled Kling sandbox as the upstream unless real Kling keys are set.
 *
 * Environment:
 *   PORT (3000; 0 picks a free port), HOST (127.0.0.1)
 *   KLING_DEMO_DIR           where the SQLite file and the callback secret live (default: .demo/ in the package)
 *   KLING_API_KEY (or KLING_ACCESS_KEY with KLING_SECRET_KEY), KLING_BASE_URL   real Kling instead of the sandbox
 *   KLING_CALLBACK_URL       a public URL that reaches this host's /kling/callback (real Kling cannot call 127.0.0.1)
 *   KLING_CALLBACK_SECRET    HMAC key for callback tokens (default: generated once into the demo dir)
 *   KLING_RELAY_LOG_LEVEL    the relay's log level (its JSON log lines go to stderr)
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runDemoHost } from '../lib/demo-host.js';

const port = Number(process.env.PORT ?? 3000);
runDemoHost({
  port,
  host: process.env.HOST || '127.0.0.1',
  dir: process.env.KLING_DEMO_DIR || join(fileURLToPath(new URL('..', import.meta.url)), '.demo'),
}).catch((error: unknown) => {
  const hint = (error as NodeJS.ErrnoException).code === 'EADDRINUSE' ? ' (set PORT to another port, or 0 for any free one)' : '';
  console.error(`demo failed to start: ${(error as Error).message}${hint}`);
  process.exitCode = 1;
});
