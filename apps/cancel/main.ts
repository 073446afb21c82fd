/**
 * `npm run cancel -- <runId> [reason]`: cancels a Conveyor run from any shell, through the library's
 * run control (no `nats` CLI needed). NATS from CONVEYOR_NATS_URL (default nats://127.0.0.1:4222, the
 * `npm run conveyor:dev` one) and CONVEYOR_TLS_CA / CONVEYOR_TLS_CERT / CONVEYOR_TLS_KEY.
 */
import { runCancelCommand } from './cancel-command';

void runCancelCommand(process.argv.slice(2), process.env, (line) => console.log(line)).then((code) =>
  process.exit(code),
);
