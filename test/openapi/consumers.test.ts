import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { buildOpenApi } from '../../lib/openapi.js';
import { loadRegistry } from '../../lib/registry/load.js';

/**
 * The OpenAPI document read by two tools its consumers use: Redocly's linter with its recommended
 * rules, and openapi-typescript with its default options, whose types a client compiles against.
 * Both are devDependencies (@redocly/cli, openapi-typescript).
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const require = createRequire(import.meta.url);

type Json = Record<string, unknown>;

interface LintProblem {
  ruleId: string;
  severity: 'error' | 'warn';
  message: string;
}

function documentFile(): { file: string; doc: Json } {
  const doc = buildOpenApi(loadRegistry(undefined), { serverUrl: '/kling' });
  const file = join(mkdtempSync(join(tmpdir(), 'kling-openapi-')), 'openapi.json');
  writeFileSync(file, JSON.stringify(doc, null, 1));
  return { file, doc };
}

/** Runs a package's command as `npx <command>` would, from the project's devDependencies. */
function tool(pkg: string, bin: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let manifest: string;
  try {
    manifest = require.resolve(`${pkg}/package.json`);
  } catch {
    throw new Error(`${pkg} is not installed: it is a devDependency of this test (npm install)`);
  }
  const script = join(dirname(manifest), bin);
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };
  return new Promise((resolve) => {
    execFile(process.execPath, [script, ...args], { env, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The body the README's curl example sends to text2video. */
function readmeText2VideoBody(): Json {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const match = /-d '(\{[^']*\})'/.exec(readme.slice(readme.indexOf('/kling/v1/videos/text2video')));
  if (!match?.[1]) throw new Error('README has no text2video curl example');
  return JSON.parse(match[1]) as Json;
}

/** Compiles the files strictly and answers each diagnostic as `file:line: message`. */
function typeErrors(files: string[]): string[] {
  const program = ts.createProgram(files, { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, skipLibCheck: true });
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${d.file.fileName.split('/').pop()}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
    return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
  });
}

describe('OpenAPI document with its consumers', function () {
  this.timeout(60_000);

  it('passes `redocly lint` with the recommended rules: bearer security schemes, a 4XX on every operation, a license', async () => {
    const { file, doc } = documentFile();
    const run = await tool('@redocly/cli', 'bin/cli.js', ['lint', file, '--extends=recommended', '--format=json']);
    const report = JSON.parse(run.stdout) as { totals: { errors: number }; problems: LintProblem[] };
    const errors = report.problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId}: ${p.message}`);
    expect(errors).to.deep.equal([]);
    expect([run.code, report.totals.errors]).to.deep.equal([0, 0]);
    const rules = new Set(report.problems.map((p) => p.ruleId));
    for (const rule of ['security-defined', 'operation-4xx-response', 'info-license', 'no-unused-components']) expect(rules.has(rule), rule).to.equal(false);

    const schemes = (doc.components as Json).securitySchemes as Record<string, Json>;
    expect(schemes.hostToken).to.include({ type: 'http', scheme: 'bearer' });
    expect(schemes.klingJwt).to.include({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    expect(doc.security).to.deep.equal([{ hostToken: [] }, { klingJwt: [] }]);
  });

  it("gives openapi-typescript (default options) types the README's text2video body compiles against, defaults optional, enums kept", async () => {
    const { file, doc } = documentFile();
    const dir = mkdtempSync(join(tmpdir(), 'kling-openapi-ts-'));
    const generated = await tool('openapi-typescript', 'bin/cli.js', [file, '--output', join(dir, 'api.ts')]);
    expect(generated.code, generated.stderr).to.equal(0);
    const operationId = ((doc.paths as Record<string, Record<string, Json>>)['/v1/videos/text2video']?.post?.operationId ?? '') as string;
    writeFileSync(
      join(dir, 'client.ts'),
      [
        "import type { operations } from './api.js';",
        `type Text2Video = NonNullable<operations['${operationId}']['requestBody']>['content']['application/json'];`,
        `export const fromReadme: Text2Video = ${JSON.stringify(readmeText2VideoBody())};`,
        "export const minimal: Text2Video = { prompt: 'a paper boat' };",
        '// @ts-expect-error mode is std, pro or 4k',
        "export const badMode: Text2Video = { prompt: 'x', mode: 'fast' };",
        '// @ts-expect-error duration is a string',
        "export const badDuration: Text2Video = { prompt: 'x', duration: 5 };",
        '',
      ].join('\n'),
    );
    expect(typeErrors([join(dir, 'client.ts')])).to.deep.equal([]);
  });

  it("gives openapi-typescript types for the standard family: Kling's text-to-video example and a POST /tasks listing compile, wrong settings do not", async () => {
    const { file, doc } = documentFile();
    const dir = mkdtempSync(join(tmpdir(), 'kling-openapi-ts-'));
    const generated = await tool('openapi-typescript', 'bin/cli.js', [file, '--output', join(dir, 'api.ts')]);
    expect(generated.code, generated.stderr).to.equal(0);
    const paths = doc.paths as Record<string, Record<string, Json>>;
    const create = (paths['/text-to-video/kling-3.0-turbo']?.post?.operationId ?? '') as string;
    const list = (paths['/tasks']?.post?.operationId ?? '') as string;
    expect([create, list]).to.not.include('');
    const example = {
      prompt: 'A girl sat on the train, looking out the window with a melancholic expression, her head swaying with the train.',
      options: { callback_url: 'https://xxx/callback', watermark_info: { enabled: false }, external_task_id: '' },
      settings: { duration: 3, resolution: '720p', aspect_ratio: '9:16' },
    };
    writeFileSync(
      join(dir, 'client.ts'),
      [
        "import type { operations } from './api.js';",
        `type TextToVideo = NonNullable<operations['${create}']['requestBody']>['content']['application/json'];`,
        `type Created = operations['${create}']['responses']['200']['content']['application/json'];`,
        `type Listing = NonNullable<operations['${list}']['requestBody']>['content']['application/json'];`,
        `type Page = operations['${list}']['responses']['200']['content']['application/json'];`,
        `export const fromKling: TextToVideo = ${JSON.stringify(example)};`,
        "export const minimal: TextToVideo = { prompt: 'a paper boat' };",
        '// @ts-expect-error resolution is 720p or 1080p on Kling 3.0 Turbo',
        "export const badResolution: TextToVideo = { prompt: 'x', settings: { resolution: '4k' } };",
        '// @ts-expect-error duration is an integer',
        "export const badDuration: TextToVideo = { prompt: 'x', settings: { duration: '5' } };",
        "export const createdId = (answer: Created): string | undefined => answer.data?.id;",
        "export const listing: Listing = { start_time: 1781193600000, end_time: '1781516352968', cursor: '', limit: 500, filters: [{ key: 'status', values: ['succeeded'] }] };",
        '// @ts-expect-error a filter key is status or product_type',
        "export const badKey: Listing = { filters: [{ key: 'model', values: ['x'] }] };",
        "export const nextCursor = (page: Page): string | undefined => page.data?.next_cursor;",
        "export const firstStatus = (page: Page): string | undefined => page.data?.result[0]?.status;",
        '',
      ].join('\n'),
    );
    expect(typeErrors([join(dir, 'client.ts')])).to.deep.equal([]);
  });
});
