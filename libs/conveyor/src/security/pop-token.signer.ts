import { Logger } from '@nestjs/common';
import { KeyObject, X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type * as Jose from 'jose';
import type { ApiAuthConfig } from '../module/api-auth.options';

/** The server compares `iat` with its clock with no leeway (contract §10.4): a clock a little ahead would be refused. */
const IAT_BACKDATE_SECONDS = 5;
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Algorithms the Conveyor server accepts, by key type. */
type PopAlgorithm = 'RS256' | 'PS256' | 'ES256' | 'ES384' | 'ES512';

const CURVE_ALGORITHMS: Record<string, PopAlgorithm> = {
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};

/** The signing algorithm the key dictates. @throws for a key the server cannot verify. */
export function popAlgorithmOf(key: KeyObject): PopAlgorithm {
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  if (key.asymmetricKeyType === 'rsa-pss') return 'PS256';
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType === 'ec' && curve && CURVE_ALGORITHMS[curve]) return CURVE_ALGORITHMS[curve];
  throw new Error(
    `the API auth key is ${key.asymmetricKeyType}${curve ? ` (${curve})` : ''}: the Conveyor server accepts RSA or ` +
      'EC P-256/P-384/P-521 keys (RS256, PS256, ES256, ES384, ES512)',
  );
}

/** Signing material read from the certificate chain and key files. */
interface PopIdentity {
  key: KeyObject;
  alg: PopAlgorithm;
  /** Standard base64 DER, leaf first (the header `x5c`). */
  x5c: string[];
  /** base64url(SHA-256(leaf DER)): the `cnf` thumbprint. */
  thumbprint: string;
  /** The leaf certificate's CN (`iss`, issue #179). */
  commonName?: string;
}

const EXTENDED_KEY_USAGES = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const;
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
/** Certificate files already warned about: one warning per file and process, however many signers. */
const warnedCertificates = new Set<string>();

/**
 * The extended key usages a Conveyor driver certificate needs that `cert` does not allow: serverAuth,
 * because the server checks a PoP token's leaf with Go's `x509.Verify` default (serverAuth), and
 * clientAuth, because NATS mutual TLS uses the same certificate (contract §10.4). A certificate
 * without the extension, or with anyExtendedKeyUsage, allows both.
 */
export function missingKeyUsages(cert: X509Certificate): Array<keyof typeof EXTENDED_KEY_USAGES> {
  // Node's `keyUsage` is the extended key usage OIDs; undefined without the extension.
  const usages = cert.keyUsage;
  if (!usages || usages.length === 0 || usages.includes(ANY_EXTENDED_KEY_USAGE)) return [];
  return (Object.keys(EXTENDED_KEY_USAGES) as Array<keyof typeof EXTENDED_KEY_USAGES>).filter(
    (name) => !usages.includes(EXTENDED_KEY_USAGES[name]),
  );
}

/**
 * Warns (once per file) about a certificate the real server or NATS would refuse: it loads fine
 * here and against the local control plane of old, so without this the first sign of it is a 401
 * "invalid token" or a TLS "bad certificate" with nothing naming the cause.
 */
function warnAboutKeyUsage(certFile: string, leaf: X509Certificate): void {
  const missing = missingKeyUsages(leaf);
  if (missing.length === 0 || warnedCertificates.has(certFile)) return;
  warnedCertificates.add(certFile);
  const effects = missing.map((usage) =>
    usage === 'serverAuth'
      ? 'a Conveyor server verifies PoP tokens with Go\'s x509 default (serverAuth) and answers 401 {"error":"invalid token"}'
      : 'NATS mutual TLS, which uses the same certificate, refuses it',
  );
  new Logger('ConveyorApiAuth').warn(
    `the API auth certificate ${certFile} lacks the ${missing.join(' and ')} extended key usage: ` +
      `${effects.join('; ')}. Reissue it with both, as \`conveyor init\` does ` +
      '(e.g. openssl x509 -req … -extfile <(echo "extendedKeyUsage=serverAuth,clientAuth"))',
  );
}

function loadIdentity(certFile: string, keyFile: string): PopIdentity {
  const pems = readFileSync(certFile, 'utf8').match(PEM_CERT) ?? [];
  if (pems.length === 0)
    throw new Error(`the API auth certificate file ${certFile} holds no PEM certificate`);
  const chain = pems.map((pem) => new X509Certificate(pem));
  const key = createPrivateKey(readFileSync(keyFile));
  if (!chain[0].checkPrivateKey(key))
    throw new Error(`the API auth key ${keyFile} does not belong to the first certificate of ${certFile}`);
  warnAboutKeyUsage(certFile, chain[0]);
  return {
    key,
    alg: popAlgorithmOf(key),
    x5c: chain.map((cert) => cert.raw.toString('base64')),
    thumbprint: createHash('sha256').update(chain[0].raw).digest('base64url'),
    commonName: /(?:^|\n)CN=([^\n]+)/.exec(chain[0].subject)?.[1],
  };
}

/**
 * Signs the proof-of-possession JWT a Conveyor API with `api.auth_enabled: true` requires on every
 * request (contract §10.4): algorithm from the key, header `x5c` = the chain, claims `iat`
 * (backdated a few seconds), `exp`, `cnf: {"x5t#S256"}` and `iss` = the certificate's CN. A token is
 * reused for half its lifetime, so a burst of requests signs once.
 *
 * @example
 *   const header = await signer.authorizationHeader(); // "Bearer eyJ…"
 *   fetch(url, { headers: { Authorization: header } });
 */
export class PopTokenSigner {
  private identity?: PopIdentity;
  private cached?: { header: string; renewAt: number };

  /** `config` undefined: API auth is off and {@link enabled} is false. */
  constructor(private readonly config: ApiAuthConfig | undefined) {
    // Read now: a wrong file fails startup, not the first API call.
    if (config) this.identity = loadIdentity(config.cert, config.key);
  }

  /** A signer for these files (outside the module, e.g. in tests and tools). */
  static fromFiles(cert: string, key: string, ttlMs = 120_000): PopTokenSigner {
    return new PopTokenSigner({ cert, key, ttlMs });
  }

  /** Whether API requests must carry a token. */
  get enabled(): boolean {
    return this.identity !== undefined;
  }

  /** `Bearer <jwt>` for the `Authorization` header. @throws when API auth is off. */
  async authorizationHeader(): Promise<string> {
    const now = Date.now();
    if (this.cached && now < this.cached.renewAt) return this.cached.header;
    const header = `Bearer ${await this.sign(now)}`;
    this.cached = { header, renewAt: now + this.config!.ttlMs / 2 };
    return header;
  }

  private sign(now: number): Promise<string> {
    const id = this.identity;
    if (!id || !this.config) throw new Error('API auth is off (set apiAuth.enabled / CONVEYOR_API_AUTH)');
    // jose (83 modules) is loaded by the first signature, not by every driver that imports the library.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { SignJWT } = require('jose') as typeof Jose;
    const iat = Math.floor(now / 1000) - IAT_BACKDATE_SECONDS;
    const jwt = new SignJWT({ cnf: { 'x5t#S256': id.thumbprint } })
      .setProtectedHeader({ alg: id.alg, typ: 'JWT', x5c: id.x5c })
      .setIssuedAt(iat)
      .setExpirationTime(Math.floor(now / 1000) + Math.floor(this.config.ttlMs / 1000));
    if (id.commonName) jwt.setIssuer(id.commonName);
    return jwt.sign(id.key);
  }
}
