import { X509Certificate, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { compactVerify, decodeProtectedHeader } from 'jose';

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
 * signature by the leaf's key; `exp` checked; `iat` not in the future, with no leeway;
 * `cnf["x5t#S256"]` (or `cnf.jkt`) = base64url(SHA-256(leaf DER)).
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
      if (chain.length === 0 || !this.chainsToRoot(chain)) return 'invalid token';
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

  /** Leaf → intermediates → one of the CA's certificates, each signature and validity period checked. */
  private chainsToRoot(chain: X509Certificate[]): boolean {
    const at = new Date(this.now());
    const valid = (cert: X509Certificate) => new Date(cert.validFrom) <= at && at <= new Date(cert.validTo);
    const intermediates = chain.slice(1);
    let current = chain[0];
    for (let depth = 0; depth <= intermediates.length; depth++) {
      if (!valid(current)) return false;
      const signedBy = (issuer: X509Certificate) =>
        current.checkIssued(issuer) && current.verify(issuer.publicKey) && valid(issuer);
      if (this.roots.some(signedBy)) return true;
      const next = intermediates.find((cert) => cert.ca && signedBy(cert));
      if (!next) return false;
      current = next;
    }
    return false;
  }
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
  res.writeHead(401, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error }));
  return true;
}
