/**
 * Run-time validation of every contract, with ajv, from the package's copy of the repository's JSON
 * Schemas (schemas/, kept equal to them by `npm run check:types`). Everything the client receives
 * is validated before it is used; everything it sends is validated before it is sent.
 */
import { createRequire } from 'node:module';
import type { ErrorObject, ValidateFunction } from 'ajv';

const require = createRequire(import.meta.url);
// ajv and ajv-formats are CommonJS; their default exports are read explicitly.
const Ajv2020 = (require('ajv/dist/2020') as { default: typeof import('ajv/dist/2020.js').default }).default;
const addFormats = (require('ajv-formats') as { default: typeof import('ajv-formats').default }).default;

/** The contracts, by the stem of their schema file. */
export type ContractName =
  | 'wallet.melt-requests'
  | 'wallet.token-status'
  | 'wallet.corrections'
  | 'recon.preflight-results'
  | 'recon.discrepancies';

// strictRequired is off: the proof references' `anyOf: [{required: [Y]}, {required: [secret]}]`
// names properties declared beside it, which that check cannot see.
const ajv = new Ajv2020({ allErrors: false, strict: true, strictTypes: false, strictRequired: false });
addFormats(ajv);

const compiled = new Map<ContractName, ValidateFunction>();

function validatorOf(name: ContractName): ValidateFunction {
  let validate = compiled.get(name);
  if (!validate) {
    // dist/src/validation.js and src/validation.ts both sit two levels below the package root.
    const schema = require(`../../schemas/${name}.schema.json`) as Record<string, unknown>;
    validate = ajv.compile(schema);
    compiled.set(name, validate);
  }
  return validate;
}

export interface ValidationResult {
  valid: boolean;
  /** The first problem, as `path: message` (never a value). */
  error?: string;
}

/** Validate `value` against a contract's schema. */
export function validateContract(name: ContractName, value: unknown): ValidationResult {
  const validate = validatorOf(name);
  if (validate(value)) return { valid: true };
  return { valid: false, error: describe(validate.errors) };
}

function describe(errors: ErrorObject[] | null | undefined): string {
  const first = errors?.[0];
  if (!first) return 'invalid';
  return `${first.instancePath || '(message)'}: ${first.message ?? 'invalid'}`;
}
