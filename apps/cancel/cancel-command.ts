import { connect, type ConnectionOptions } from 'nats';
import { publishCancel } from '@conveyor-ci/nestjs';

/** The local control plane's NATS (`npm run conveyor:dev`), as the Conveyor server's default port. */
export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';
const USAGE =
  'usage: npm run cancel -- <runId> [reason]  (env: CONVEYOR_NATS_URL, default ' +
  `${DEFAULT_NATS_URL}; CONVEYOR_TLS_CA, CONVEYOR_TLS_CERT, CONVEYOR_TLS_KEY for a secured server)`;

/**
 * `npm run cancel -- <runId> [reason]`: cancels a run the way `RunControl.cancel` does (the core
 * publish every driver replica listens on, and the KV entry for a step that has not started yet),
 * so nobody needs the `nats` CLI to stop a run. Returns the exit code: 0 sent, 1 NATS unreachable or
 * refused, 2 bad arguments.
 *
 * @param args what follows `--`: the run id, then the reason (the rest of the words).
 * @param env where CONVEYOR_NATS_URL and the CONVEYOR_TLS_* files come from.
 * @param write where each line of output goes.
 */
export async function runCancelCommand(
  args: string[],
  env: NodeJS.ProcessEnv,
  write: (line: string) => void,
): Promise<number> {
  const [runId, ...words] = args;
  if (!runId || runId === '--help' || runId === '-h') {
    write(USAGE);
    return 2;
  }
  const reason = words.join(' ') || 'cancelled from npm run cancel';
  const servers = (env.CONVEYOR_NATS_URL || DEFAULT_NATS_URL).split(',').map((s) => s.trim());
  const options: ConnectionOptions = {
    servers,
    name: 'conveyor cancel',
    maxReconnectAttempts: 0,
    timeout: 5000,
  };
  if (env.CONVEYOR_TLS_CA || env.CONVEYOR_TLS_CERT) {
    options.tls = {
      caFile: env.CONVEYOR_TLS_CA,
      certFile: env.CONVEYOR_TLS_CERT,
      keyFile: env.CONVEYOR_TLS_KEY,
    };
  }
  let nc;
  try {
    nc = await connect(options);
  } catch (err) {
    write(
      `cannot reach NATS at ${servers.join(',')}: ${(err as Error).message}; set CONVEYOR_NATS_URL ` +
        '(and CONVEYOR_TLS_CA/CERT/KEY for a secured server)',
    );
    return 1;
  }
  try {
    const { remembered } = await publishCancel(nc, runId, reason);
    write(
      `cancel requested for run ${runId} (${JSON.stringify(reason)})` +
        (remembered ? '' : '; not remembered for steps not started yet (no JetStream KV)'),
    );
    return 0;
  } catch (err) {
    // The library refuses a run id that is not one NATS subject token (a `.`, `*`, `>` or space).
    write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  } finally {
    await nc.close();
  }
}
