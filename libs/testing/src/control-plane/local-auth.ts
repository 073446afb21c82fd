import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PopTokenSigner } from '@conveyor-ci/nestjs/internal';
import { TestPki, createTestPki } from '../test-pki';

/** A secured local set-up (`--auth`): throwaway certificates, a driver's env and API request headers. */
export interface LocalAuth {
  pki: TestPki;
  /** What a driver needs: NATS mutual TLS, and PoP JWTs on API calls with the same pair. */
  driverEnv: Record<string, string>;
  /** Headers of a request to the secured API (`Authorization: Bearer <PoP JWT>`). */
  headers(): Promise<Record<string, string>>;
  /** Deletes the certificates. */
  remove(): void;
}

/**
 * Generates a CA, a server and a client certificate (node-forge) in a new temp directory for
 * `ConveyorControlPlane.start({ auth: pki })` and the driver that talks to it.
 */
export function createLocalAuth(clientName = 'conveyor-dev-driver'): LocalAuth {
  const dir = mkdtempSync(join(tmpdir(), 'conveyor-auth-'));
  const pki = createTestPki(dir, clientName);
  const signer = PopTokenSigner.fromFiles(pki.clientCert, pki.clientKey);
  return {
    pki,
    driverEnv: {
      CONVEYOR_TLS_CA: pki.ca,
      CONVEYOR_TLS_CERT: pki.clientCert,
      CONVEYOR_TLS_KEY: pki.clientKey,
      CONVEYOR_API_AUTH: 'true',
    },
    headers: async () => ({ Authorization: await signer.authorizationHeader() }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
