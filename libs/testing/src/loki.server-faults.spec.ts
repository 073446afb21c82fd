import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { once } from 'node:events';
import { eventually, sleep } from './eventually';
import { LokiServer } from './loki.server';
import { oneLine, push } from './loki.server.spec-support';

describe('LokiServer faults', () => {
  let loki: LokiServer;

  beforeEach(async () => {
    loki = await LokiServer.start();
  });

  afterEach(() => loki.close());

  describe('faults', () => {
    it('respondWith(429, 2) answers the next two pushes 429, storing nothing, then accepts', async () => {
      loki.respondWith(429, 2);

      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await push(loki, oneLine)).status);

      expect(statuses).toEqual([429, 429, 204]);
      expect(loki.entries()).toHaveLength(1);
      expect(loki.rejected.map((r) => r.status)).toEqual([429, 429]);
      expect([loki.pushes, loki.requests]).toEqual([1, 3]);
    });

    it('respondWith(500) answers one push 500, even a valid one', async () => {
      loki.respondWith(500);

      const first = await push(loki, oneLine);
      expect([first.status, (await first.text()).trim()]).toEqual([500, 'injected failure (500)']);
      expect((await push(loki, oneLine)).status).toBe(204);
      expect(loki.entries()).toHaveLength(1);
    });

    it('hang: a client with a 300 ms timeout is aborted; pushes are answered again after hang(false)', async () => {
      loki.hang();

      await expect(
        fetch(`${loki.url}/loki/api/v1/push`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(oneLine),
          signal: AbortSignal.timeout(300),
        }),
      ).rejects.toMatchObject({ name: 'TimeoutError' });
      expect([loki.requests, loki.pushes, loki.entries()]).toEqual([1, 0, []]);

      loki.hang(false);
      expect((await push(loki, oneLine)).status).toBe(204);
      expect(loki.entries()).toHaveLength(1);
    });

    it('hang(false) leaves a request already hanging unanswered; close() ends it', async () => {
      loki.hang();
      const outcome = new Promise<string>((resolve) => {
        const req = httpRequest(
          `${loki.url}/loki/api/v1/push`,
          { method: 'POST', headers: { 'Content-Type': 'application/json' } },
          (res) => resolve(`answered ${res.statusCode}`),
        );
        req.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
        req.end(JSON.stringify(oneLine));
      });
      await eventually(() => loki.requests === 1, 'the hung request to arrive');

      loki.hang(false);
      expect((await push(loki, oneLine)).status).toBe(204);
      expect(await Promise.race([outcome, sleep(200).then(() => 'still hanging')])).toBe('still hanging');

      await loki.close();
      expect(await outcome).toBe('error ECONNRESET');
    });

    it('refuse: connections are refused (ECONNREFUSED) until accept() listens again on the same port', async () => {
      const url = loki.url;
      await loki.refuse();

      await expect(push(loki, oneLine)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
      expect(loki.requests).toBe(0);

      await loki.accept();
      expect(loki.url).toBe(url);
      expect((await push(loki, oneLine)).status).toBe(204);
      expect(loki.entries()).toHaveLength(1);
    });

    it('refuse drops open connections, as a crashed Loki would', async () => {
      const socket = connect(Number(new URL(loki.url).port), '127.0.0.1');
      await once(socket, 'connect');
      const closed = once(socket, 'close');

      await loki.refuse();

      await closed;
    });
  });
});
