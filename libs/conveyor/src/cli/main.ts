#!/usr/bin/env node
/**
 * The package's command line, `conveyor-nestjs` (the `bin` of `@conveyor-ci/nestjs`). Only
 * `generate` for now: types and ahead-of-time validators from the server's resource definitions.
 * Run at development or CI time, never by a driver: this is the one place ajv is loaded, so it is
 * an optional peer (`npm i -D ajv`) that a driver in production does without.
 */
const [command, ...rest] = process.argv.slice(2);
const io = { out: (line: string) => console.log(line), err: (line: string) => console.error(line) };

async function main(): Promise<number> {
  if (command !== 'generate') {
    const asked = command === undefined || command === '--help' || command === '-h';
    (asked ? io.out : io.err)('Usage: conveyor-nestjs generate --help');
    return asked ? 0 : 2;
  }
  try {
    require.resolve('ajv/dist/standalone');
  } catch {
    io.err(
      'conveyor-nestjs generate compiles schemas with ajv 8: install it as a dev dependency (npm i -D ajv)',
    );
    return 2;
  }
  const { generateCommand } = await import('./generate.command');
  return generateCommand(rest, io);
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 2;
  },
);
export {};
