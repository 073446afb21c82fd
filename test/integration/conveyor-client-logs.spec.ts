import { Agent, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpService } from '@nestjs/axios';
import axios from 'axios';
import { firstValueFrom, take, toArray } from 'rxjs';
import { ConveyorApiError, ConveyorClient, ConveyorLog } from '@conveyor-ci/nestjs';
import { ConveyorControlPlane, eventually } from '@conveyor-ci/testing';

/**
 * The SSE log streams against the local control plane: replay of stored lines, then live ones from
 * core NATS, with the server's heartbeat comments in between. No keep-alive, so the plane's open
 * connections are exactly the client's live streams.
 */
let plane: ConveyorControlPlane;
let client: ConveyorClient;

/**
 * Heartbeats every 50 ms, so streams see comments between lines. The abort tests use a plane with
 * the server's 15 s instead: a heartbeat arriving after the abort would end the read anyway and
 * hide a socket the client failed to close.
 */
async function usePlane(heartbeatMs: number): Promise<void> {
  plane = await ConveyorControlPlane.start({ heartbeatMs });
  const http = new HttpService(axios.create({ httpAgent: new Agent({ keepAlive: false }) }));
  client = new ConveyorClient({ apiUrl: plane.apiUrl, retries: 0 }, http);
}

let runCounter = 0;
const newRun = () => `run-${++runCounter}-${Date.now()}`;
const line = (runid: string, driver: string, n: number): ConveyorLog => ({
  runid,
  driver,
  pipeline: '',
  timestamp: `2026-12-01T10:00:00.${String(n).padStart(9, '0')}Z`,
  message: `line ${n}`,
});
/** What a driver's logger does for a live line: the Log JSON on core `live.logs.{run}.{driver}`. */
const publishLive = (log: ConveyorLog) =>
  plane.nc.publish(`live.logs.${log.runid}.${log.driver}`, JSON.stringify(log));

async function openConnectionsSettle(expected: number): Promise<void> {
  // Well below the 15 s heartbeat: a socket the client left open would only close at the next one.
  await eventually(
    async () => (await plane.openConnections()) === expected,
    `${expected} open connections`,
    3000,
  );
}

describe('live log streams', () => {
  beforeAll(() => usePlane(50));
  afterAll(() => plane.stop());

  it('gives replayed then live lines in order, skipping heartbeats', async () => {
    const runid = newRun();
    const stored = [1, 2, 3].map((n) => line(runid, 'shell-runner', n));
    for (const log of stored) plane.store.addLog(log);
    const abort = new AbortController();
    const received: ConveyorLog[] = [];
    const reading = (async () => {
      for await (const log of client.streamDriverLogs('shell-runner', runid, { signal: abort.signal })) {
        received.push(log);
        if (received.length === 3) {
          // The replay is in; now live lines, with a replayed one sent live again (the server drops
          // that copy) and another driver's line that this stream must not show.
          publishLive(stored[2]);
          publishLive(line(runid, 'other-driver', 99));
          for (const n of [4, 5, 6]) publishLive(line(runid, 'shell-runner', n));
        }
        if (received.length === 6) break;
      }
    })();
    await reading;
    expect(received.map((l) => l.message)).toEqual([
      'line 1',
      'line 2',
      'line 3',
      'line 4',
      'line 5',
      'line 6',
    ]);
    // Heartbeats every 50 ms passed by meanwhile; nothing more arrives after `break` closed the stream.
    await openConnectionsSettle(0);
  });

  it('gives every line, also lines that look the same (a Go driver stamps to the second)', async () => {
    const runid = newRun();
    const same: ConveyorLog = {
      runid,
      driver: 'go-driver',
      pipeline: '',
      timestamp: '1796896800',
      message: 'waiting for the container',
    };
    // Live copies differ from the stored ones: the plane drops a live line equal to a replayed one.
    const sameLive: ConveyorLog = { ...same, message: 'container started' };
    for (let i = 0; i < 5; i++) plane.store.addLog(same);
    const received: ConveyorLog[] = [];
    // A client that drops look-alikes would wait forever for the tenth line: stop it well before the test's timeout.
    const signal = AbortSignal.timeout(5000);
    for await (const log of client.streamDriverLogs('go-driver', runid, { signal })) {
      received.push(log);
      if (received.length === 5) for (let i = 0; i < 5; i++) publishLive(sameLive);
      if (received.length === 10) break;
    }
    expect(received).toEqual([...Array(5).fill(same), ...Array(5).fill(sameLive)]);
    await openConnectionsSettle(0);
  });

  it('streams every driver of a run through the pipeline route, as an Observable', async () => {
    const runid = newRun();
    plane.store.addLog(line(runid, 'a', 1));
    const lines = firstValueFrom(client.streamPipelineLogs(runid).asObservable().pipe(take(3), toArray()));
    await eventually(async () => (await plane.openConnections()) === 1, 'the stream is open');
    await new Promise((r) => setTimeout(r, 100)); // the replay went out: the subscription is live
    publishLive(line(runid, 'b', 2));
    publishLive(line(runid, 'a', 3));
    expect((await lines).map((l) => `${l.driver}:${l.message}`)).toEqual([
      'a:line 1',
      'b:line 2',
      'a:line 3',
    ]);
    await openConnectionsSettle(0); // take(3) unsubscribed: the socket is closed
  });
});

describe('a server that numbers its events', () => {
  it('drops only an event whose SSE id was seen, never a look-alike line with its own id', async () => {
    const same: ConveyorLog = { runid: 'r', driver: 'd', pipeline: '', timestamp: '1', message: 'same' };
    const event = (id: number) => `id: ${id}\ndata: ${JSON.stringify(same)}\n\n`;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      // 1 and 2 replayed, 2 again live (the overlap), then 3.
      res.end([1, 2, 2, 3].map(event).join(''));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const numbered = new ConveyorClient({ apiUrl: `http://127.0.0.1:${port}`, retries: 0 });
      const received: ConveyorLog[] = [];
      for await (const log of numbered.streamDriverLogs('d', 'r')) received.push(log);
      expect(received).toEqual([same, same, same]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('closing a live log stream', () => {
  beforeAll(() => usePlane(15_000));
  afterAll(() => plane.stop());

  it('frees the socket when aborted while waiting for a line (the server sees the client go)', async () => {
    const abort = new AbortController();
    const lines: ConveyorLog[] = [];
    const reading = (async () => {
      for await (const log of client.streamDriverLogs('quiet', newRun(), { signal: abort.signal }))
        lines.push(log);
    })();
    await eventually(async () => (await plane.openConnections()) === 1, 'the stream is open');
    await new Promise((r) => setTimeout(r, 150)); // a few heartbeats, no lines
    const abortedAt = Date.now();
    abort.abort();
    await reading; // the iteration ends without an error, at once, not at the next heartbeat
    expect(Date.now() - abortedAt).toBeLessThan(2000);
    expect(lines).toEqual([]);
    await openConnectionsSettle(0);
  });

  it('unsubscribing an Observable that has had no line closes its socket too', async () => {
    const subscription = client.streamPipelineLogs(newRun()).asObservable().subscribe();
    await eventually(async () => (await plane.openConnections()) === 1, 'the stream is open');
    subscription.unsubscribe();
    await openConnectionsSettle(0);
  });

  it('refuses a run id that is no raw path segment, and reports a refused stream as an API error', async () => {
    expect(() => client.streamPipelineLogs('a/b')).toThrow(/cannot be addressed/);
    const misplaced = new ConveyorClient({ apiUrl: `${plane.apiUrl}/nowhere`, retries: 0 });
    const error = await (async () => {
      for await (const log of misplaced.streamPipelineLogs('r')) return log;
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConveyorApiError);
    expect(error).toMatchObject({ status: 404, body: 'Cannot GET /nowhere/logs/pipeline/r' });
  });
});
