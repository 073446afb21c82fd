import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The README's and the guides' code samples are their promise: each `<!-- sample: file.ts -->` block
 * is written out as that file, compiled with the repo's compiler settings, and its tests are run by
 * a separate jest (the samples include jest specs of their own, which cannot run inside this test).
 * A ```ts block without a sample marker fails here, so none goes unchecked.
 */
const repo = join(__dirname, '../..');
const guideDir = join(repo, 'docs/guides');
const guides = [
  'README.md',
  ...readdirSync(guideDir)
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/guides/${f}`),
];
const out = join(repo, 'test/docs-samples.generated');

function samplesOf(markdown: string): { file: string; code: string }[] {
  const found: { file: string; code: string }[] = [];
  for (const m of markdown.matchAll(/<!-- sample: (\S+) -->\s*```ts\n([\s\S]*?)```/g)) {
    found.push({ file: m[1], code: m[2] });
  }
  return found;
}

const samples = guides.flatMap((guide) => samplesOf(readFileSync(join(repo, guide), 'utf8')));

beforeAll(() => {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const { file, code } of samples) writeFileSync(join(out, file), code);
  writeFileSync(
    join(out, 'tsconfig.json'),
    JSON.stringify({
      extends: '../../tsconfig.json',
      compilerOptions: { noEmit: true },
      include: ['*.ts'],
      exclude: [], // the repo's tsconfig excludes this folder from its own build
    }),
  );
});

it('finds every sample the README and the guides announce, and no unmarked TypeScript block', () => {
  expect(samples.map((s) => s.file).sort()).toEqual([
    'app.module.ts',
    'build.driver.e2e-spec.ts',
    'build.driver.fake-compiler.spec.ts',
    'build.driver.spec.ts',
    'build.driver.ts',
    'client-live-logs.ts',
    'client-tour.ts',
    'jest.config.ts',
    'main.ts',
    'readme-config.module.ts',
    'readme-greeting.spec.ts',
    'readme-main.ts',
    'readme-observed.module.ts',
    'report.driver.spec.ts',
    'retire-driver.ts',
    'run-control.driver.ts',
  ]);
  for (const guide of guides) {
    const markdown = readFileSync(join(repo, guide), 'utf8');
    const blocks = markdown.match(/^```(ts|typescript)\n/gm) ?? [];
    expect({ guide, blocks: blocks.length }).toEqual({ guide, blocks: samplesOf(markdown).length });
  }
});

it("the README's first driver is examples/minimal-driver/main.ts, which examples.spec.ts runs", () => {
  const readmeMain = samples.find((s) => s.file === 'readme-main.ts')!;
  expect(readmeMain.code).toBe(readFileSync(join(repo, 'examples/minimal-driver/main.ts'), 'utf8'));
  const readme = readFileSync(join(repo, 'README.md'), 'utf8').split('\n');
  // The first 40 lines hold the install commands, a complete driver and the command that runs it.
  const first40 = readme.slice(0, 40).join('\n');
  expect(first40).toContain('npm install @conveyor-ci/nestjs');
  expect(first40).toContain(readmeMain.code);
  expect(first40).toMatch(/node dist\/main/);
});

it('compiles the samples', () => {
  const tsc = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', out], {
    encoding: 'utf8',
  });
  expect(tsc.stdout + tsc.stderr).toBe('');
  expect(tsc.status).toBe(0);
});

it("runs the samples' tests: the testing module and a real nats-server", () => {
  const config = {
    rootDir: repo,
    testEnvironment: 'node',
    testMatch: ['<rootDir>/test/docs-samples.generated/*.{spec,e2e-spec}.ts'],
    transform: { '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.json', diagnostics: false }] },
    moduleNameMapper: {
      '^@conveyor-ci/nestjs$': '<rootDir>/libs/conveyor/src',
      '^@conveyor-ci/nestjs/(.*)$': '<rootDir>/libs/conveyor/src/$1',
      '^@conveyor-ci/testing$': '<rootDir>/libs/testing/src',
    },
    testTimeout: 30_000,
  };
  const jest = spawnSync(
    process.execPath,
    [require.resolve('jest/bin/jest'), '--ci', '--runInBand', '--config', JSON.stringify(config)],
    { cwd: repo, encoding: 'utf8', env: { ...process.env, CONVEYOR_NATS_URL: '' } },
  );
  const report = jest.stdout + jest.stderr;
  expect(report).toMatch(/Tests:\s+7 passed, 7 total/);
  expect(jest.status).toBe(0);
}, 120_000);
