import type { ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import Ajv, { type AnySchema, type ErrorObject, type Options as AjvOptions } from 'ajv';
import Ajv2019 from 'ajv/dist/2019';
import Ajv2020 from 'ajv/dist/2020';
import type AjvCore from 'ajv/dist/core';
import { ApiDeps, error, errorText } from './fiber-http';
import { isPlainObject } from './go-json.codec';

// ---------------------------------------------------------------------------------------------
// Spec validation (`internal/utils/validator.go`: santhosh-tekuri/jsonschema v5, here ajv)
// ---------------------------------------------------------------------------------------------

type AjvClass = new (options: AjvOptions) => AjvCore;

/**
 * `$schema` URLs santhosh-tekuri/jsonschema v5 knows (its `findDraft`, after `http:`→`https:` and
 * dropping `#`), with the ajv class that validates them. ajv 8 has no draft-04/06 vocabulary, so those
 * are validated as draft-07, an approximation.
 */
const DRAFTS: Record<string, AjvClass> = {
  'https://json-schema.org/schema': Ajv2020,
  'https://json-schema.org/draft/2020-12/schema': Ajv2020,
  'https://json-schema.org/draft/2019-09/schema': Ajv2019,
  'https://json-schema.org/draft-07/schema': Ajv,
  'https://json-schema.org/draft-06/schema': Ajv,
  'https://json-schema.org/draft-04/schema': Ajv,
};

/**
 * `utils.ValidateResource` (contract §3.2): only `spec` is validated, against the definition's
 * `schema`. Returns undefined when valid, else what follows `Resource validation failed: `. The error
 * layout is the Go library's; its location part uses this process's cwd like the server's
 * `CompileString("inline-schema")` uses its own, and the leaf message is ajv's wording [I].
 * Non-schema keys (the docs' top-level `pipeline`) are ignored (`strict: false`). Formats are not
 * asserted: v5's default draft (2020-12) treats them as annotations (it does assert them for older
 * drafts, which this does not).
 */
function validateSpec(schema: unknown, spec: unknown): string | undefined {
  const location = pathToFileURL(resolve('inline-schema')).href;
  const compileError = (reason: string) =>
    `failed to compile schema: jsonschema ${location} compilation failed: ${reason}`;
  // v5's default draft when `$schema` is absent is 2020-12.
  let AjvForDraft: AjvClass = Ajv2020;
  let root = schema;
  if (isPlainObject(schema) && Object.hasOwn(schema, '$schema')) {
    const { $schema: declared, ...rest } = schema;
    if (typeof declared !== 'string') return compileError(`invalid $schema in ${location}`);
    const draft = DRAFTS[declared.replace(/^http:\/\//, 'https://').replace(/#\/?$/, '')];
    if (!draft) return compileError(`unsupported $schema ${declared}`); // [I] v5 would try to load it and fail
    AjvForDraft = draft;
    root = rest; // each ajv class knows its meta-schema under one spelling only; the class carries the draft
  }
  if (typeof root !== 'boolean' && !isPlainObject(root))
    return compileError('schema must be object or boolean');
  let validate: ReturnType<AjvCore['compile']>;
  try {
    validate = ajvFor(AjvForDraft).compile(root as AnySchema);
  } catch (err) {
    return compileError(errorText(err));
  }
  if (validate(spec)) return undefined;
  const [first] = validate.errors ?? [];
  if (!first) return `validation failed: jsonschema: '' does not validate with ${location}#`;
  const keyword = first.schemaPath.replace(/^#/, '');
  return `validation failed: jsonschema: ${goQuote(first.instancePath)} does not validate with ${location}#${keyword}: ${describe(first)}`;
}

const ajvInstances = new Map<AjvClass, AjvCore>();

/** One ajv per draft, emptied before each use: every definition compiles alone, and `$id`s never clash. */
function ajvFor(AjvForDraft: AjvClass): AjvCore {
  const cached = ajvInstances.get(AjvForDraft);
  if (cached) return cached.removeSchema(); // drops every schema but the meta-schemas, and the cache
  const ajv = new AjvForDraft({ strict: false, allErrors: false, validateFormats: false });
  ajvInstances.set(AjvForDraft, ajv);
  return ajv;
}

function describe(error: ErrorObject): string {
  const message = error.message ?? `${error.keyword} failed`;
  const extra = (error.params as { additionalProperty?: string }).additionalProperty;
  return extra === undefined ? message : `${message}: '${extra}'`;
}

/** The v5 library's `quote`: Go `%q`, with single quotes outside. */
function goQuote(value: string): string {
  const inner = JSON.stringify(value).slice(1, -1).replace(/\\"/g, '"').replace(/'/g, "\\'");
  return `'${inner}'`;
}

/**
 * The definition lookup and `spec` validation shared by POST and PUT (contract §10.1). Answers and
 * returns true when the resource is refused.
 */
export function rejectSpec(res: ServerResponse, deps: ApiDeps, type: string, spec: unknown): boolean {
  const definition = deps.store.definitions.get(type);
  // Server bug kept (§10.1): an unknown type is 500, the 404 branch is dead (`FindOne` returns an error).
  if (!definition) {
    error(res, 500, `Failed to find resource definition: resource definition with name ${type} not found`);
    return true;
  }
  if (definition.schema == null) {
    error(res, 400, 'Resource definition schema is required');
    return true;
  }
  const invalid = validateSpec(definition.schema, spec);
  if (invalid === undefined) return false;
  error(res, 400, `Resource validation failed: ${invalid}`);
  return true;
}
