/**
 * `npm run conveyor:dev`: a local Conveyor control plane on the server's default ports (API 8080,
 * NATS 4222; override with CONVEYOR_DEV_API_PORT / CONVEYOR_DEV_NATS_PORT), until Ctrl-C.
 */
import { ConveyorControlPlane, PortInUseError, createLocalAuth } from '@conveyor-ci/testing';

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
  const plane = await ConveyorControlPlane.start({
    auth: auth?.pki,
    apiPort: port('CONVEYOR_DEV_API_PORT', 8080),
    natsPort: port('CONVEYOR_DEV_NATS_PORT', 4222),
    onEvent: (line) => console.log(`[engine] ${line}`),
  });
  console.log(`Conveyor API  ${plane.apiUrl}`);
  console.log(`NATS          ${plane.natsUrl}`);
  console.log(
    'Point a driver at it: CONVEYOR_NATS_URL=%s CONVEYOR_API_URL=%s. Ctrl-C stops.',
    plane.natsUrl,
    plane.apiUrl,
  );
  if (auth) {
    console.log(
      `Secured: point a driver at it with ${Object.entries(auth.driverEnv)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
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
