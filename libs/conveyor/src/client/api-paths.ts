/**
 * Path segments the way the server reads them. Fiber v2 takes route params raw from the path
 * (`UnescapePath: false`, contract §10.2): `/resources/t/a%3Ab` looks up the name `a%3Ab`, not
 * `a:b`. So a name travels unescaped, and only characters a URL path carries as they are may be in
 * it (RFC 3986 `pchar` without `%`: letters, digits, `-._~`, `!$&'()*+,;=`, `:` and `@`). Escaping
 * anything else would address another name, so such a name is refused with a clear error instead.
 */
const RAW_PATH_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,;=:@]+$/;

/** A name the API cannot address in a path; the request is not sent. */
export class InvalidApiNameError extends Error {
  constructor(what: string, value: unknown) {
    super(
      `${what} ${JSON.stringify(value)} cannot be addressed through the Conveyor API: the server reads path ` +
        'segments raw, so only letters, digits and -._~!$&\'()*+,;=:@ are allowed (not empty, not "." or "..")',
    );
    this.name = 'InvalidApiNameError';
  }
}

/** `value` as one raw path segment. @throws InvalidApiNameError */
export function pathSegment(what: string, value: unknown): string {
  if (typeof value !== 'string' || !RAW_PATH_SEGMENT.test(value) || value === '.' || value === '..')
    throw new InvalidApiNameError(what, value);
  return value;
}

/** `/resources/{type}/{name}`, optionally `/{version}`. */
export function resourcePath(type: string, name: string, version?: string | number): string {
  const base = `/resources/${pathSegment('resource type', type)}/${pathSegment('resource name', name)}`;
  return version === undefined ? base : `${base}/${pathSegment('resource version', String(version))}`;
}

/** `/resource-definitions/{name}`. */
export function definitionPath(name: string): string {
  return `/resource-definitions/${pathSegment('resource definition name', name)}`;
}
