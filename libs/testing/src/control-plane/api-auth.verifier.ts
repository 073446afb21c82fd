import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { compactVerify, decodeProtectedHeader } from 'jose';
import { send } from './fiber-http';

/** Paths the server's JWT middleware lets through without a token (contract §10.4). */
const PUBLIC_PREFIXES = ['/health', '/swagger', '/metrics'];
/** The only algorithms the server accepts. */
const ALLOWED_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'ES384', 'ES512'];
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The server's 401 reasons, verbatim. */
export type ApiAuthError =
  | 'missing Authorization header'
  | 'invalid Authorization header format'
  | 'invalid token'
  | 'token expired'
  | 'token issued in the future';

/**
 * Checks proof-of-possession JWTs the way a Conveyor server with `api.auth_enabled: true` does
 * (contract §10.4): `Bearer` scheme; algorithm in RS256/PS256/ES256/ES384/ES512; header `x5c` (std
 * base64 DER, leaf first) chaining to the CA with `x5c[1:]` as intermediates, no host name check;
 * every certificate of the chain allowing serverAuth (Go's default `KeyUsages`: a clientAuth-only
 * leaf is refused); signature by the leaf's key; `exp` checked; `iat` not in the future, with no
 * leeway; `cnf["x5t#S256"]` (or `cnf.jkt`) = base64url(SHA-256(leaf DER)).
 */
export class ApiAuthVerifier {
  private readonly roots: X509Certificate[];

  constructor(
    caPem: string,
    private readonly now: () => number = Date.now,
  ) {
    this.roots = (caPem.match(PEM_CERT) ?? []).map((pem) => new X509Certificate(pem));
    if (this.roots.length === 0) throw new Error('the API auth CA holds no PEM certificate');
  }

  static fromCaFile(file: string): ApiAuthVerifier {
    return new ApiAuthVerifier(readFileSync(file, 'utf8'));
  }

  /** Whether `path` is one the middleware skips. */
  static isPublic(path: string): boolean {
    return PUBLIC_PREFIXES.some((prefix) => path.startsWith(prefix));
  }

  /** `undefined` when the header carries a valid token, else the server's error text. */
  async verify(authorization: string | undefined): Promise<ApiAuthError | undefined> {
    if (!authorization) return 'missing Authorization header';
    const match = /^Bearer (\S+)$/.exec(authorization);
    if (!match) return 'invalid Authorization header format';
    const token = match[1];
    let claims: { exp?: unknown; iat?: unknown; cnf?: Record<string, unknown> };
    let leaf: X509Certificate;
    try {
      const header = decodeProtectedHeader(token);
      if (!header.alg || !ALLOWED_ALGORITHMS.includes(header.alg)) return 'invalid token';
      const chain = (header.x5c ?? []).map((der) => new X509Certificate(Buffer.from(der, 'base64')));
      const verified = chain.length === 0 ? undefined : this.chainToRoot(chain);
      // The server logs "certificate specifies an incompatible key usage" and answers the same 401.
      if (!verified || !verified.every(allowsServerAuth)) return 'invalid token';
      leaf = chain[0];
      const { payload } = await compactVerify(token, leaf.publicKey, { algorithms: [header.alg] });
      claims = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return 'invalid token';
    }
    const nowSeconds = this.now() / 1000;
    if (typeof claims.exp !== 'number' || claims.exp <= nowSeconds) return 'token expired';
    if (typeof claims.iat === 'number' && claims.iat > nowSeconds) return 'token issued in the future';
    const thumbprint = createHash('sha256').update(leaf.raw).digest('base64url');
    const bound = claims.cnf?.['x5t#S256'] ?? claims.cnf?.jkt;
    return bound === thumbprint ? undefined : 'invalid token';
  }

  /**
   * Leaf → intermediates → one of the CA's certificates, each signature and validity period checked:
   * the verified chain, root included, or undefined.
   */
  private chainToRoot(chain: X509Certificate[]): X509Certificate[] | undefined {
    const at = new Date(this.now());
    const valid = (cert: X509Certificate) => new Date(cert.validFrom) <= at && at <= new Date(cert.validTo);
    const intermediates = chain.slice(1);
    const path = [chain[0]];
    let current = chain[0];
    for (let depth = 0; depth <= intermediates.length; depth++) {
      if (!valid(current)) return undefined;
      const signedBy = (issuer: X509Certificate) =>
        current.checkIssued(issuer) && current.verify(issuer.publicKey) && valid(issuer);
      const root = this.roots.find(signedBy);
      if (root) return [...path, root];
      const next = intermediates.find((cert) => cert.ca && signedBy(cert));
      if (!next) return undefined;
      path.push(next);
      current = next;
    }
    return undefined;
  }
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
/** Netscape and Microsoft Server Gated Crypto: Go's `checkChainForKeyUsage` takes either for serverAuth. */
const SERVER_GATED_CRYPTO = ['2.16.840.1.113730.4.1', '1.3.6.1.4.1.311.10.3.3'];

/**
 * Go's `x509.Verify` with empty `KeyUsages`, as the server's JWT middleware calls it: the requested
 * usage defaults to serverAuth, and every certificate of the chain must allow it, either by having no
 * extended key usage extension, or by listing anyExtendedKeyUsage, serverAuth or an SGC usage.
 * (Node's `keyUsage` is the extended key usage OIDs, undefined without the extension.)
 */
function allowsServerAuth(cert: X509Certificate): boolean {
  const usages = cert.keyUsage;
  if (usages === undefined || usages.length === 0) return true;
  return usages.some(
    (oid) => oid === ANY_EXTENDED_KEY_USAGE || oid === SERVER_AUTH || SERVER_GATED_CRYPTO.includes(oid),
  );
}

/**
 * The control plane's JWT middleware: answers 401 with the server's JSON body and returns true when
 * the request may not pass; public paths and valid tokens return false.
 */
export async function refuseUnauthorized(
  req: IncomingMessage,
  res: ServerResponse,
  verifier: ApiAuthVerifier,
): Promise<boolean> {
  if (ApiAuthVerifier.isPublic(new URL(req.url ?? '/', 'http://x').pathname)) return false;
  const error = await verifier.verify(req.headers.authorization);
  if (!error) return false;
  send(res, 401, { 'Content-Type': 'application/json' }, JSON.stringify({ error }));
  return true;
}
