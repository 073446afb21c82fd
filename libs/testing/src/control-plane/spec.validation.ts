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
 * `CompileString("inline-schema")` uses its own. ajv finds every error; the one v5 reports (its
 * keyword order, first cause down) is picked and worded as v5 words it for the common keywords
 * (type, const, enum, required, additionalProperties, pattern, lengths, sizes, bounds), ajv's
 * wording for the rest [I].
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
  const first = firstLeaf(validate.errors ?? []);
  if (!first) return `validation failed: jsonschema: '' does not validate with ${location}#`;
  const { error, message } = first;
  const keyword = keywordLocation(error);
  return `validation failed: jsonschema: ${goQuote(error.instancePath)} does not validate with ${location}#${keyword}: ${message}`;
}

const ajvInstances = new Map<AjvClass, AjvCore>();

/**
 * One ajv per draft, emptied before each use: every definition compiles alone, and `$id`s never
 * clash. All errors, verbose (the failing value and keyword value): the v5 library's first error and
 * its message are picked and written from them.
 */
function ajvFor(AjvForDraft: AjvClass): AjvCore {
  const cached = ajvInstances.get(AjvForDraft);
  if (cached) return cached.removeSchema(); // drops every schema but the meta-schemas, and the cache
  const ajv = new AjvForDraft({ strict: false, allErrors: true, verbose: true, validateFormats: false });
  ajvInstances.set(AjvForDraft, ajv);
  return ajv;
}

// ---------------------------------------------------------------------------------------------
// santhosh-tekuri/jsonschema v5.3.1 error selection and texts (`schema.go`, `compiler.go`, `errors.go`)
// ---------------------------------------------------------------------------------------------

/**
 * The order in which v5's `Schema.validate` checks a schema's keywords and appends their errors.
 * `ValidationError.Error()` prints the leaf reached by always following the first cause, so the
 * reported error is the first keyword of this order that failed, followed down into sub-schemas.
 * (`type` returns at once when it fails, which ranking it first gives too.)
 */
const V5_KEYWORD_ORDER = [
  ['false schema'],
  ['type'],
  ['const'],
  ['enum'],
  ['format'],
  ['minProperties'],
  ['maxProperties'],
  ['required'],
  ['properties'],
  ['propertyNames'],
  ['patternProperties'],
  ['additionalProperties'],
  ['dependencies', 'dependentRequired', 'dependentSchemas'],
  ['minItems'],
  ['maxItems'],
  ['uniqueItems'],
  ['items', 'prefixItems', 'additionalItems'],
  ['contains', 'minContains', 'maxContains'],
  ['minLength'],
  ['maxLength'],
  ['pattern'],
  ['contentEncoding', 'contentMediaType', 'contentSchema'],
  ['minimum'],
  ['exclusiveMinimum'],
  ['maximum'],
  ['exclusiveMaximum'],
  ['multipleOf'],
  ['$ref', '$recursiveRef', '$dynamicRef'],
  ['not'],
  ['allOf'],
  ['anyOf'],
  ['oneOf'],
  ['if', 'then', 'else'],
  ['unevaluatedProperties', 'unevaluatedItems'],
];
const RANK = new Map(V5_KEYWORD_ORDER.flatMap((group, rank) => group.map((k) => [k, rank] as const)));
/** Keywords whose next schema path segment names a sub-schema (a property, pattern or definition). */
const NAMED_CHILDREN = new Set([
  'properties',
  'patternProperties',
  'dependentSchemas',
  'dependencies',
  '$defs',
  'definitions',
]);
/** Keywords whose next segment, when numeric, is the index of a sub-schema. */
const INDEXED_CHILDREN = new Set(['items', 'prefixItems', 'allOf', 'anyOf', 'oneOf']);

/** A schema path as v5's traversal order: each keyword's rank, and the index of an indexed sub-schema. */
function rankPath(error: ErrorObject): number[] {
  const segments = error.schemaPath.replace(/^#\/?/, '').split('/').filter(Boolean);
  const ranks: number[] = [];
  for (let i = 0; i < segments.length; i++) {
    const keyword = segments[i];
    ranks.push(RANK.get(keyword) ?? V5_KEYWORD_ORDER.length);
    if (NAMED_CHILDREN.has(keyword))
      i++; // Go iterates a map: any order is the library's; ajv's is kept
    else if (INDEXED_CHILDREN.has(keyword) && /^\d+$/.test(segments[i + 1] ?? ''))
      ranks.push(Number(segments[++i]));
  }
  return ranks;
}

/** Negative when `a` comes first in v5's order; a deeper error (a cause) before the one it is part of. */
function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i];
  return b.length - a.length;
}

/** The error v5 would print, with its v5 message. */
function firstLeaf(errors: ErrorObject[]): { error: ErrorObject; message: string } | undefined {
  const ranked = errors.map((error, order) => ({ error, order, ranks: rankPath(error) }));
  ranked.sort((a, b) => compareRanks(a.ranks, b.ranks) || a.order - b.order);
  const first = ranked[0]?.error;
  if (!first) return undefined;
  // One v5 error lists every extra property of the object, where ajv gives one error each.
  const siblings = errors.filter(
    (e) => e.schemaPath === first.schemaPath && e.instancePath === first.instancePath,
  );
  return { error: first, message: v5Message(first, siblings) };
}

/** v5's keyword location: the schema path (for a false schema, the schema's own path). */
function keywordLocation(error: ErrorObject): string {
  const path = error.schemaPath.replace(/^#/, '');
  return error.keyword === 'false schema' ? path.replace(/\/?false schema$/, '') : path;
}

/** v5's `jsonType`: JSON numbers decode to float64 in the server, so a number is never "integer". */
function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value === 'object' ? 'object' : typeof value;
}

/**
 * Go's `%#v` of a schema value: schemas are decoded with `UseNumber`, so numbers are `json.Number`
 * and print quoted like strings; null is `<nil>`.
 */
function goSharpV(value: unknown): string {
  if (value === null) return '<nil>';
  if (typeof value === 'number') return JSON.stringify(String(value));
  return typeof value === 'string' ? JSON.stringify(value) : String(value);
}

const isPrimitive = (value: unknown) => jsonType(value) !== 'object' && jsonType(value) !== 'array';

/** The message v5 gives for the keyword that failed; ajv's own wording for keywords not covered here. */
function v5Message(error: ErrorObject, siblings: ErrorObject[]): string {
  const { keyword, schema, data } = error;
  const params = error.params as Record<string, unknown>;
  switch (keyword) {
    case 'false schema':
      return 'not allowed';
    case 'type': {
      const types = Array.isArray(schema) ? schema : [schema];
      return `expected ${types.join(' or ')}, but got ${jsonType(data)}`;
    }
    case 'const':
      return isPrimitive(schema) ? `value must be ${goSharpV(schema)}` : 'const failed';
    case 'enum': {
      const values = schema as unknown[];
      if (!values.every(isPrimitive)) return 'enum failed';
      if (values.length === 1) return `value must be ${goSharpV(values[0])}`;
      return `value must be one of ${values.map(goSharpV).join(', ')}`;
    }
    case 'required': {
      const present = isPlainObject(data) ? data : {};
      const missing = (schema as string[]).filter((name) => !Object.hasOwn(present, name));
      return `missing properties: ${missing.map(goQuote).join(', ')}`;
    }
    case 'additionalProperties': {
      const names = siblings.map((e) =>
        String((e.params as { additionalProperty?: string }).additionalProperty),
      );
      return `additionalProperties ${names.map(goQuote).join(', ')} not allowed`;
    }
    case 'pattern':
      return `does not match pattern ${goQuote(String(schema))}`;
    case 'minLength':
    case 'maxLength':
      return `length must be ${keyword === 'minLength' ? '>=' : '<='} ${schema}, but got ${[...String(data)].length}`;
    case 'minItems':
    case 'maxItems':
      return `${keyword === 'minItems' ? 'minimum' : 'maximum'} ${schema} items required, but found ${(data as unknown[]).length} items`;
    case 'minProperties':
    case 'maxProperties':
      return `${keyword === 'minProperties' ? 'minimum' : 'maximum'} ${schema} properties allowed, but found ${Object.keys(data as object).length} properties`;
    case 'minimum':
      return `must be >= ${schema} but found ${data}`;
    case 'exclusiveMinimum':
      return `must be > ${schema} but found ${data}`;
    case 'maximum':
      return `must be <= ${schema} but found ${data}`;
    case 'exclusiveMaximum':
      return `must be < ${schema} but found ${data}`;
    case 'multipleOf':
      return `${data} not multipleOf ${schema}`;
    case 'uniqueItems':
      return `items at index ${Math.min(Number(params.i), Number(params.j))} and ${Math.max(Number(params.i), Number(params.j))} are equal`;
    case 'not':
      return 'not failed';
    case 'anyOf':
      return 'anyOf failed';
    case 'oneOf':
      return Array.isArray(params.passingSchemas)
        ? `valid against schemas at indexes ${params.passingSchemas.join(' and ')}`
        : 'oneOf failed';
    default: {
      const message = error.message ?? `${keyword} failed`;
      const extra = params.additionalProperty;
      return extra === undefined ? message : `${message}: '${String(extra)}'`;
    }
  }
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
