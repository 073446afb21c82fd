#!/usr/bin/env node
/**
 * The package's command line, `conveyor-nestjs` (the `bin` of `@conveyor-ci/nestjs`):
 * `generate` (types and ahead-of-time validators from the server's resource definitions) and
 * `bundle` (a driver's one-file production start-up with a code cache). Run at development, CI or
 * image build time, never by a driver: the tools they need (ajv, esbuild) are optional peers
 * (`npm i -D ajv esbuild`) that a driver in production does without.
 */
const [command, ...rest] = process.argv.slice(2);
const io = { out: (line: string) => console.log(line), err: (line: string) => console.error(line) };

async function main(): Promise<number> {
  if (command === 'bundle') {
    if (!resolvable('esbuild')) {
      io.err('conveyor-nestjs bundle builds with esbuild: install it as a dev dependency (npm i -D esbuild)');
      return 2;
    }
    const { bundleCommand } = await import('./bundle.command');
    return bundleCommand(rest, io);
  }
  if (command !== 'generate') {
    const asked = command === undefined || command === '--help' || command === '-h';
    (asked ? io.out : io.err)('Usage: conveyor-nestjs generate --help | conveyor-nestjs bundle --help');
    return asked ? 0 : 2;
  }
  if (!resolvable('ajv/dist/standalone')) {
    io.err(
      'conveyor-nestjs generate compiles schemas with ajv 8: install it as a dev dependency (npm i -D ajv)',
    );
    return 2;
  }
  const { generateCommand } = await import('./generate.command');
  return generateCommand(rest, io);
}

function resolvable(id: string): boolean {
  try {
    require.resolve(id);
    return true;
  } catch {
    return false;
  }
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 2;
  },
);
export {};
