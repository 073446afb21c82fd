import Ajv, { type Options as AjvOptions } from 'ajv';
import Ajv2019 from 'ajv/dist/2019';
import Ajv2020 from 'ajv/dist/2020';
import type AjvCore from 'ajv/dist/core';

type AjvClass = new (options: AjvOptions) => AjvCore;

/**
 * `$schema` URLs the server's validator knows (santhosh-tekuri/jsonschema v5, contract §3.2; its
 * `findDraft`, after `http:`→`https:` and dropping `#`), with the ajv class for each. ajv 8 has no
 * draft-04/06 vocabulary: those are compiled as draft-07, an approximation. Kept in step with the
 * local control plane's validation (`libs/testing/src/control-plane/spec.validation.ts`).
 */
const DRAFTS: Record<string, AjvClass> = {
  'https://json-schema.org/schema': Ajv2020,
  'https://json-schema.org/draft/2020-12/schema': Ajv2020,
  'https://json-schema.org/draft/2019-09/schema': Ajv2019,
  'https://json-schema.org/draft-07/schema': Ajv,
  'https://json-schema.org/draft-06/schema': Ajv,
  'https://json-schema.org/draft-04/schema': Ajv,
};

/** A definition's schema as the server's dialect reads it: the ajv to compile it with, and the schema. */
export interface DialectSchema {
  /** A fresh ajv for the draft: each definition compiles alone, so generated names never depend on order. */
  ajv: AjvCore;
  /** The schema without `$schema` (each ajv class knows its meta-schema under one spelling only). */
  schema: boolean | Record<string, unknown>;
  draft: string;
}

/**
 * The server's dialect: draft 2020-12 unless `$schema` names another; unknown keywords are
 * accepted and ignored (`strict: false`), as the server's validator does (the docs' top-level
 * `pipeline` key validates nothing); `format` is not asserted (an annotation in 2020-12). The first
 * error only: a run needs one reason, and stopping there is what keeps a validator fast.
 * @throws Error naming the definition when the server could not compile the schema either.
 */
export function dialectOf(definition: string, schema: unknown): DialectSchema {
  let AjvForDraft: AjvClass = Ajv2020;
  let draft = 'https://json-schema.org/draft/2020-12/schema';
  let root = schema;
  if (typeof schema === 'object' && schema !== null && !Array.isArray(schema) && '$schema' in schema) {
    const { $schema: declared, ...rest } = schema as Record<string, unknown>;
    const known =
      typeof declared === 'string'
        ? DRAFTS[declared.replace(/^http:\/\//, 'https://').replace(/#\/?$/, '')]
        : undefined;
    if (!known)
      throw new Error(`resource definition "${definition}": unsupported $schema ${JSON.stringify(declared)}`);
    AjvForDraft = known;
    draft = declared as string;
    root = rest;
  }
  if (typeof root !== 'boolean' && (typeof root !== 'object' || root === null || Array.isArray(root)))
    throw new Error(`resource definition "${definition}": schema must be an object or a boolean`);
  const ajv = new AjvForDraft({
    strict: false,
    validateFormats: false,
    allErrors: false,
    code: { source: true, esm: true, lines: true },
  });
  return { ajv, schema: root as DialectSchema['schema'], draft };
}
