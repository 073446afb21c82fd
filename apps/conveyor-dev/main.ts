/**
 * `npm run conveyor:dev`: a local Conveyor control plane on the server's default ports (API 8080,
 * NATS 4222; override with CONVEYOR_DEV_API_PORT / CONVEYOR_DEV_NATS_PORT), until Ctrl-C. It
 * applies the reference driver's `pipeline` resource definition first (`--no-seed`: starts empty,
 * as a fresh server is) and prints paste-ready curls from a definition to a run's logs, then each
 * run's `GET /logs?runid=` URL and its `npm run cancel` line as runs start. `--auth`: secured, as
 * with `api.auth_enabled: true`, with certificates made here.
 */
import { PopTokenSigner } from '@conveyor-ci/nestjs';
import {
  ConveyorControlPlane,
  PIPELINE_DEFINITION,
  PortInUseError,
  createLocalAuth,
} from '@conveyor-ci/testing';
import { BannerTarget, REFERENCE_DRIVER, conveyorDevBanner, runStartedLines } from './banner';
import { DEAD_LETTER_SUBJECTS, deadLetterSubject } from './console-setup';
import { warnAboutMissingDrivers } from './driver-check';

/** The env var the banner's curls read the bearer token from in `--auth` mode. */
const TOKEN_VARIABLE = 'CONVEYOR_TOKEN';
/** Lifetime of the token printed for curls: long enough to try things by hand. */
const BANNER_TOKEN_TTL_MS = 3_600_000;

function port(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < 0 || value > 65535)
    throw new Error(`${name}=${raw} is not a TCP port`);
  return value;
}

async function main(): Promise<void> {
  // --auth: as with `api.auth_enabled: true` (NATS mTLS + PoP JWTs), with certificates made here.
  const auth = process.argv.includes('--auth') ? createLocalAuth() : undefined;
  const seed = !process.argv.includes('--no-seed');
  // Set once the plane listens: a run started before that (none can be) would print nothing.
  const printed: { target?: BannerTarget; plane?: ConveyorControlPlane } = {};
  const plane = await ConveyorControlPlane.start({
    auth: auth?.pki,
    apiPort: port('CONVEYOR_DEV_API_PORT', 8080),
    natsPort: port('CONVEYOR_DEV_NATS_PORT', 4222),
    onEvent: (line) => console.log(`[engine] ${line}`),
    console: { deadLetterSubject: DEAD_LETTER_SUBJECTS },
    onRun: (runId, resource) => {
      const { target, plane } = printed;
      if (!target || !plane) return;
      const what = `${resource.resource}/${resource.name}${resource.pipeline ? `, pipeline "${resource.pipeline}"` : ''}`;
      for (const line of runStartedLines(target, runId, what)) console.log(line);
      warnAboutMissingDrivers(plane, resource);
    },
  });
  const target: BannerTarget = {
    apiUrl: plane.apiUrl,
    natsUrl: plane.natsUrl,
    ...(auth ? { auth: { driverEnv: auth.driverEnv, tokenVariable: TOKEN_VARIABLE } } : {}),
  };
  printed.target = target;
  printed.plane = plane;
  if (seed) {
    // Through the API, as a user would: a fresh server knows no resource type, and the first
    // submit of a `pipeline` resource would fail with "resource definition ... not found".
    const response = await fetch(`${plane.apiUrl}/resource-definitions/apply`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(await auth?.headers()) },
      body: JSON.stringify(PIPELINE_DEFINITION),
    });
    if (response.status !== 201) {
      const answer = `${response.status} ${await response.text()}`;
      await plane.stop();
      throw new Error(`seeding the pipeline definition: ${answer}`);
    }
  }
  for (const line of conveyorDevBanner(target, seed)) console.log(line);
  console.log(
    `Console       ${plane.consoleUrl} (live drivers, runs, logs, cancel; dead letters of drivers started with ` +
      `CONVEYOR_DEAD_LETTER_SUBJECT=${deadLetterSubject(REFERENCE_DRIVER)})`,
  );
  if (auth) {
    const signer = PopTokenSigner.fromFiles(auth.pki.clientCert, auth.pki.clientKey, BANNER_TOKEN_TTL_MS);
    console.log(
      `Secured: the curls read a PoP token (valid 1 h) from $${TOKEN_VARIABLE}; set it first:\n` +
        `   export ${TOKEN_VARIABLE}=${(await signer.authorizationHeader()).replace(/^Bearer /, '')}`,
    );
  }
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await plane.stop();
    auth?.remove();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

main().catch((err) => {
  if (err instanceof PortInUseError) {
    const setting = err.service === 'api' ? 'CONVEYOR_DEV_API_PORT' : 'CONVEYOR_DEV_NATS_PORT';
    console.error(`${err.message}: set ${setting} to a free port (e.g. ${setting}=0 for any)`);
  } else console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
