export { createValidator, toFieldErrors, MAX_ERRORS, type Validator, type ValidationResult } from './validator.js';
export { CUSTOM_KEYWORDS } from './keywords.js';
