import { spawn } from 'node:child_process';
import { registerSpawned } from '@conveyor-ci/testing';

/** Runs the built `npm run dev` script with `args` to its end; returns its exit code and all its output. */
export async function runDev(
  entry: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  const child = spawn(process.execPath, [entry, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  registerSpawned({ pid: child.pid });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
  return { code, out };
}
