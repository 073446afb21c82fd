/**
 * JSON Schema to TypeScript types, for `conveyor-nestjs generate`. Covers what resource definitions
 * use (types, properties and `required`, `additionalProperties`, `items`/`prefixItems`, `enum`,
 * `const`, `anyOf`/`oneOf`/`allOf`, local `$ref`s to `$defs`/`definitions`); anything it cannot
 * express is `unknown`, never a type narrower than what the schema accepts. The validator, not the
 * type, is what enforces the schema.
 */

type Schema = Record<string, unknown>;

/** A named type of the output: the root's, and one per `$defs` / `definitions` entry. */
export interface NamedType {
  name: string;
  description?: string;
  /** An object literal type body (`{ … }`), written as an interface; else a type alias. */
  type: string;
}

const isSchema = (value: unknown): value is Schema =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** `flutter-builder` → `FlutterBuilder`; a name that starts with a digit gets a leading `T`. */
export function pascalCase(name: string): string {
  const words = name.split(/[^A-Za-z0-9]+/).filter(Boolean);
  const joined = words.map((w) => w[0].toUpperCase() + w.slice(1)).join('') || 'Resource';
  return /^\d/.test(joined) ? `T${joined}` : joined;
}

/** A property key as TypeScript writes it: bare when it is an identifier, else quoted. */
function propertyKey(key: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(key) ? key : JSON.stringify(key);
}

/** A doc comment for `description`, indented; empty when there is none. */
export function docComment(description: unknown, indent: string): string {
  if (typeof description !== 'string' || !description.trim()) return '';
  const lines = description.trim().replace(/\*\//g, '*\\/').split('\n');
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((line) => `${indent} * ${line}`.trimEnd()).join('\n')}\n${indent} */\n`;
}

/** Writes the types of one definition's schema: `rootName` and its `$defs`. */
export class SchemaTypes {
  private readonly defNames = new Map<string, string>();

  constructor(
    private readonly root: unknown,
    private readonly rootName: string,
  ) {
    for (const keyword of ['$defs', 'definitions']) {
      const defs = isSchema(root) ? root[keyword] : undefined;
      if (!isSchema(defs)) continue;
      for (const key of Object.keys(defs))
        this.defNames.set(`#/${keyword}/${key}`, `${rootName}${pascalCase(key)}`);
    }
  }

  /** The root type, then one per definition, in a stable order. */
  namedTypes(): NamedType[] {
    const types: NamedType[] = [this.named(this.rootName, this.root)];
    for (const keyword of ['$defs', 'definitions']) {
      const defs = isSchema(this.root) ? this.root[keyword] : undefined;
      if (!isSchema(defs)) continue;
      for (const [key, schema] of Object.entries(defs))
        types.push(this.named(this.defNames.get(`#/${keyword}/${key}`)!, schema));
    }
    return types;
  }

  private named(name: string, schema: unknown): NamedType {
    const description =
      isSchema(schema) && typeof schema.description === 'string' ? schema.description : undefined;
    return { name, ...(description ? { description } : {}), type: this.typeOf(schema, '') };
  }

  /** The type of `schema`; nested object literals are indented by `indent`. */
  typeOf(schema: unknown, indent: string): string {
    if (schema === true || (isSchema(schema) && Object.keys(schema).length === 0)) return 'unknown';
    if (schema === false) return 'never';
    if (!isSchema(schema)) return 'unknown';
    if (typeof schema.$ref === 'string') return this.defNames.get(schema.$ref) ?? 'unknown';
    if ('const' in schema) return literal(schema.const);
    if (Array.isArray(schema.enum)) return union(schema.enum.map(literal));
    // Every part holds at once: the type's own, each `anyOf`/`oneOf` (a union), each `allOf` member.
    const parts: string[] = [];
    const byType = this.byType(schema, indent);
    if (byType) parts.push(byType);
    for (const keyword of ['anyOf', 'oneOf']) {
      const options = schema[keyword];
      if (Array.isArray(options) && options.length > 0)
        parts.push(union(options.map((o) => this.typeOf(o, indent))));
    }
    if (Array.isArray(schema.allOf)) parts.push(...schema.allOf.map((member) => this.typeOf(member, indent)));
    const known = parts.filter((part) => part !== 'unknown');
    if (known.length === 0) return 'unknown';
    return known.length === 1 ? known[0] : known.map(paren).join(' & ');
  }

  /** The type from `type` (one or several), or from keywords that imply one (`properties`, `items`). */
  private byType(schema: Schema, indent: string): string | undefined {
    const declared = Array.isArray(schema.type)
      ? schema.type.filter((t): t is string => typeof t === 'string')
      : typeof schema.type === 'string'
        ? [schema.type]
        : undefined;
    const implied =
      declared ??
      (schema.properties || schema.additionalProperties !== undefined || schema.required
        ? ['object']
        : schema.items !== undefined || schema.prefixItems !== undefined
          ? ['array']
          : undefined);
    if (!implied) return undefined;
    return union(
      implied.map((type) => {
        switch (type) {
          case 'string':
            return 'string';
          case 'number':
          case 'integer':
            return 'number';
          case 'boolean':
            return 'boolean';
          case 'null':
            return 'null';
          case 'array':
            return this.arrayType(schema, indent);
          case 'object':
            return this.objectType(schema, indent);
          default:
            return 'unknown';
        }
      }),
    );
  }

  private arrayType(schema: Schema, indent: string): string {
    // Draft 2020-12 `prefixItems` + `items`; older drafts an `items` array + `additionalItems`.
    const prefix = Array.isArray(schema.prefixItems)
      ? schema.prefixItems
      : Array.isArray(schema.items)
        ? schema.items
        : undefined;
    const rest = Array.isArray(schema.prefixItems)
      ? schema.items
      : Array.isArray(schema.items)
        ? schema.additionalItems
        : schema.items;
    if (!prefix) return `${paren(this.typeOf(rest ?? true, indent))}[]`;
    const head = prefix.map((item) => `${this.typeOf(item, indent)}?`);
    if (rest === false) return `[${head.join(', ')}]`;
    return `[${[...head, `...${paren(this.typeOf(rest ?? true, indent))}[]`].join(', ')}]`;
  }

  private objectType(schema: Schema, indent: string): string {
    const inner = `${indent}  `;
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    const properties = isSchema(schema.properties) ? schema.properties : {};
    const lines = Object.entries(properties).map(([key, property]) => {
      const optional = required.has(key) ? '' : '?';
      return `${docComment(isSchema(property) ? property.description : undefined, inner)}${inner}${propertyKey(key)}${optional}: ${this.typeOf(property, inner)};`;
    });
    // Required names without a schema of their own are there, of any type.
    for (const key of required) {
      if (typeof key === 'string' && !(key in properties))
        lines.push(`${inner}${propertyKey(key)}: unknown;`);
    }
    const extra = schema.additionalProperties;
    const closed = extra === false || schema.unevaluatedProperties === false;
    if (!closed) {
      // Other keys are allowed by the schema: they are `unknown`, so reading one needs a check.
      const value = isSchema(extra) && !schema.patternProperties ? this.typeOf(extra, inner) : 'unknown';
      const fitsProperties = value === 'unknown' || lines.length === 0;
      lines.push(`${inner}[key: string]: ${fitsProperties ? value : 'unknown'};`);
    }
    if (lines.length === 0) return '{}';
    return `{\n${lines.join('\n')}\n${indent}}`;
  }
}

function literal(value: unknown): string {
  if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) return JSON.stringify(value);
  return 'unknown';
}

function union(types: string[]): string {
  const unique = [...new Set(types)];
  if (unique.includes('unknown')) return 'unknown';
  return unique.length === 0 ? 'never' : unique.join(' | ');
}

/** Parenthesised when it is a union or intersection, so `[]` or `&` binds to the whole. */
function paren(type: string): string {
  let depth = 0;
  for (let i = 0; i < type.length; i++) {
    const c = type[i];
    if ('{[(<'.includes(c)) depth++;
    else if ('}])>'.includes(c)) depth--;
    else if (depth === 0 && (c === '|' || c === '&')) return `(${type})`;
  }
  return type;
}
