#!/usr/bin/env node
// The `kling-relay` command. The published package runs its build, dist/lib/cli.js. A clone runs its
// TypeScript sources through tsx instead, so that `npx kling-relay` works there without a build and
// never runs a dist/ older than the sources. Plain JavaScript on purpose: it runs before any build.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('../', import.meta.url);
const sources = new URL('lib/cli.ts', root);
const built = new URL('dist/lib/cli.js', root);

/** tsx from the clone's dependencies, or undefined when they are not installed. */
async function tsx() {
  try {
    return await import('tsx/esm/api');
  } catch {
    return undefined;
  }
}

const loader = existsSync(fileURLToPath(sources)) ? await tsx() : undefined;
if (loader) {
  loader.register();
  await import(sources.href);
} else if (existsSync(fileURLToPath(built))) {
  await import(built.href);
} else {
  console.error('kling-relay: neither the build (dist/lib/cli.js) nor tsx to run the sources is here; run `npm ci` in the clone (or `npm run build`).');
  process.exitCode = 1;
}
