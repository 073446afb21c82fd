import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { runDev } from '../support/dev-run';

const DEV = resolve(__dirname, '../../dist/apps/dev/main.js');

describe('npm run dev -- --auth (built, as a child process)', () => {
  beforeAll(() => {
    if (!existsSync(DEV)) throw new Error(`${DEV} is missing: run \`npm run build\` first (npm test does)`);
  });

  it('--auth --once: the whole sample secured (NATS mTLS, PoP JWTs on every API call) passes end to end', async () => {
    const { code, out } = await runDev(DEV, ['--auth', '--once']);
    expect({ code, out }).toMatchObject({ code: 0 });
    const certificates = /\(secured: certificates in (\S+)\)/.exec(out)?.[1];
    expect(certificates).toBeDefined();
    expect(out).toContain('[shell-runner] tick 3');
    expect(out).toContain('result: success: 2 step(s) passed');
    // The throwaway CA and keys do not outlive the run.
    expect(existsSync(certificates!)).toBe(false);
  });
});
