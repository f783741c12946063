import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * The package's own root folder. Sources run from `lib/` under tsx and from `dist/lib/` once built,
 * so the schemas are found by walking up to the folder that holds `schemas/registry.json`.
 */
export function packageRoot(): string {
  if (cached) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'schemas', 'registry.json')) && existsSync(join(dir, 'package.json'))) {
      cached = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error('kling-relay: cannot find the package folder holding schemas/registry.json');
    dir = parent;
  }
}

export function builtinRegistryPath(): string {
  return join(packageRoot(), 'schemas', 'registry.json');
}
