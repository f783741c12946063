import addFormatsModule from 'ajv-formats';
import type { Ajv2020 } from 'ajv/dist/2020.js';

// ajv-formats is CommonJS: under NodeNext its default import is `module.exports`, which also carries
// `.default`. Keeping the interop here means no other file needs to know.
export function addFormats(ajv: Ajv2020): void {
  addFormatsModule.default(ajv);
}
