import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as forge from 'node-forge';

/** PEM files of a throwaway certificate authority with a server and a client certificate. */
export interface TestPki {
  dir: string;
  /** The CA certificate (what `tls.ca` / `CONVEYOR_TLS_CA` point at). */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** The client certificate (CN = `clientName`) and its key: NATS mTLS and the API's PoP JWT. */
  clientCert: string;
  clientKey: string;
  /** The CA's own key and certificate, to issue more certificates with {@link issueCertificate}. */
  authority: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey };
}

interface Issued {
  cert: forge.pki.Certificate;
  key: forge.pki.rsa.PrivateKey;
  certPem: string;
  keyPem: string;
}

/** RSA keys from Node's crypto (node-forge's pure-JS generation takes seconds), as node-forge objects. */
function rsaKeys(): { publicKey: forge.pki.rsa.PublicKey; privateKey: forge.pki.rsa.PrivateKey } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()),
    privateKey: forge.pki.privateKeyFromPem(
      privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    ) as forge.pki.rsa.PrivateKey,
  };
}

/** An extended key usage by name, or any OID (e.g. `2.5.29.37.0`, anyExtendedKeyUsage). */
export type ExtKeyUsage = 'serverAuth' | 'clientAuth' | (string & {});

/** Options of {@link issueCertificate}. */
export interface IssueOptions {
  notBefore?: Date;
  notAfter?: Date;
  /**
   * The extended key usages of a server or client certificate. Default both serverAuth and
   * clientAuth, as upstream `conveyor init` issues them: the Conveyor server verifies a PoP token's
   * leaf with Go's `x509.Verify` default (serverAuth), and NATS mutual TLS needs clientAuth, so one
   * certificate serves both (contract §10.4). `[]` leaves the extension out (Go then accepts any usage).
   * A CA has none unless given here (Go checks every certificate of the chain).
   */
  extKeyUsage?: ExtKeyUsage[];
}

/**
 * Issues a certificate signed by `issuer` (self-signed without one). `kind` sets the key usages a
 * TLS stack checks: a CA (no extended key usage), a server for 127.0.0.1/localhost, or a client;
 * servers and clients both get serverAuth and clientAuth unless `options.extKeyUsage` says otherwise.
 */
export function issueCertificate(
  commonName: string,
  kind: 'ca' | 'server' | 'client',
  issuer?: { cert: forge.pki.Certificate; key: forge.pki.rsa.PrivateKey },
  options: IssueOptions = {},
): Issued {
  const keys = rsaKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = `01${randomBytes(8).toString('hex')}`;
  cert.validity.notBefore = options.notBefore ?? new Date(Date.now() - 60_000);
  cert.validity.notAfter = options.notAfter ?? new Date(Date.now() + 24 * 3600_000);
  const subject = [{ name: 'commonName', value: commonName }];
  cert.setSubject(subject);
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : subject);
  const extensions: object[] = [{ name: 'basicConstraints', cA: kind === 'ca' }];
  if (kind === 'ca') extensions.push({ name: 'keyUsage', keyCertSign: true, cRLSign: true });
  else extensions.push({ name: 'keyUsage', digitalSignature: true, keyEncipherment: true });
  const usages = options.extKeyUsage ?? (kind === 'ca' ? [] : ['serverAuth', 'clientAuth']);
  // node-forge takes each usage as a key set to true: a name it knows or a dotted OID.
  if (usages.length > 0)
    extensions.push({ name: 'extKeyUsage', ...Object.fromEntries(usages.map((u) => [u, true])) });
  if (kind === 'server') {
    extensions.push({
      name: 'subjectAltName',
      altNames: [
        { type: 7, ip: '127.0.0.1' },
        { type: 2, value: 'localhost' },
      ],
    });
  }
  cert.setExtensions(extensions);
  cert.sign(issuer?.key ?? keys.privateKey, forge.md.sha256.create());
  return {
    cert,
    key: keys.privateKey,
    certPem: forge.pki.certificateToPem(cert),
    keyPem: forge.pki.privateKeyToPem(keys.privateKey),
  };
}

/**
 * Writes a throwaway CA, a server certificate (127.0.0.1, localhost) and a client certificate
 * (CN `clientName`) into `dir`, generated with node-forge: for mTLS tests and `--auth` local runs.
 * Both leaves carry serverAuth and clientAuth, so they work against the real Conveyor server too.
 */
export function createTestPki(dir: string, clientName = 'conveyor-driver'): TestPki {
  mkdirSync(dir, { recursive: true });
  const ca = issueCertificate('Conveyor local CA', 'ca');
  const server = issueCertificate('localhost', 'server', ca);
  const client = issueCertificate(clientName, 'client', ca);
  const write = (name: string, pem: string) => {
    const file = join(dir, name);
    writeFileSync(file, pem, { mode: 0o600 });
    return file;
  };
  return {
    dir,
    ca: write('ca.pem', ca.certPem),
    serverCert: write('server.pem', server.certPem),
    serverKey: write('server-key.pem', server.keyPem),
    clientCert: write('client.pem', client.certPem),
    clientKey: write('client-key.pem', client.keyPem),
    authority: { cert: ca.cert, key: ca.key },
  };
}

/** nats-server's `tls { … }` block for `pki`; `verify` requires and checks client certificates. */
export function natsTlsConfig(
  pki: Pick<TestPki, 'ca' | 'serverCert' | 'serverKey'>,
  verify: boolean,
): string {
  return [
    'tls {',
    `  cert_file: ${JSON.stringify(pki.serverCert)}`,
    `  key_file: ${JSON.stringify(pki.serverKey)}`,
    `  ca_file: ${JSON.stringify(pki.ca)}`,
    `  verify: ${verify}`,
    '  timeout: 2',
    '}',
  ].join('\n');
}
