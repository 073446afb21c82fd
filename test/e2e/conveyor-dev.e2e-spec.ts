import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { runDev } from '../support/dev-run';

const CONVEYOR_DEV = resolve(__dirname, '../../dist/apps/conveyor-dev/main.js');

describe('npm run conveyor:dev (built, as a child process)', () => {
  it.each([
    ['CONVEYOR_DEV_API_PORT', 'API'],
    ['CONVEYOR_DEV_NATS_PORT', 'nats-server'],
  ])('names %s when its port is taken, in one line, and exits 1', async (setting, service) => {
    const busy = createServer();
    await new Promise<void>((done) => busy.listen(0, '127.0.0.1', done));
    const port = (busy.address() as { port: number }).port;
    try {
      const other = setting === 'CONVEYOR_DEV_API_PORT' ? 'CONVEYOR_DEV_NATS_PORT' : 'CONVEYOR_DEV_API_PORT';
      const { code, out } = await runDev(CONVEYOR_DEV, [], { [setting]: String(port), [other]: '0' });
      expect(code).toBe(1);
      expect(out.trim()).toBe(
        `port ${port} is already in use: the local ${service} cannot listen there: set ${setting} to a free port (e.g. ${setting}=0 for any)`,
      );
    } finally {
      busy.close();
    }
  });
});
