import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SandboxEndpoint } from './types.js';

let cached: SandboxEndpoint[] | undefined;

/**
 * The built-in relayed paths, with their family. The registry is looked for by walking up from this module, so the
 * same code finds it from `lib/sandbox/` under tsx and from `dist/lib/sandbox/` once compiled.
 */
export function builtInEndpoints(): SandboxEndpoint[] {
  if (cached) return cached;
  const raw = JSON.parse(readFileSync(findRegistryFile(), 'utf8')) as {
    endpoints?: { path?: unknown; kind?: unknown; method?: unknown; family?: unknown }[];
  };
  // GET entries are Kling's preset lists, which the sandbox serves by itself (resources.ts).
  cached = (raw.endpoints ?? []).flatMap((entry) =>
    typeof entry.path === 'string' && entry.method !== 'GET' && (entry.kind === 'task' || entry.kind === 'sync')
      ? [{ path: entry.path, kind: entry.kind, family: entry.family === 'standard' ? ('standard' as const) : ('v1' as const) }]
      : [],
  );
  return cached;
}

function findRegistryFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'schemas', 'registry.json');
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error('kling sandbox: schemas/registry.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}
