import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NatsConnection } from 'nats';
import { encodeGoJson } from '@conveyor-ci/nestjs/internal';
import type { ControlPlaneStore } from './control-plane.store';
import { send, text } from './fiber-http';

export interface LogRouteDeps {
  store: ControlPlaneStore;
  nc: NatsConnection;
  /** The server sends `: heartbeat` every 15 s. */
  heartbeatMs: number;
}

/**
 * `POST /logs`, `GET /logs` and the two SSE streams (contract §10.1, §11). The `/logs` handlers
 * answer errors in plain text, unlike the rest of the API.
 * @returns false when the path is not a logs route.
 */
export function handleLogRoute(
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  deps: LogRouteDeps,
): boolean {
  const url = new URL(req.url ?? '/', 'http://x');
  const path = url.pathname.replace(/\/+$/, '') || '/';
  if (path === '/logs' && req.method === 'POST') {
    try {
      if (!String(req.headers['content-type'] ?? '').startsWith('application/json'))
        throw new Error('Unprocessable Entity');
      deps.store.addLog(JSON.parse(body.toString('utf8')));
    } catch (err) {
      text(res, 400, (err as Error).message);
      return true;
    }
    text(res, 201, 'Created'); // Fiber `SendStatus(201)`: the status text as body
    return true;
  }
  if (path === '/logs' && req.method === 'GET') {
    const q = url.searchParams;
    const logs = deps.store.queryLogs({
      pipeline: q.get('pipeline') ?? undefined,
      driver: q.get('driver') ?? undefined,
      runid: q.get('runid') ?? undefined,
    });
    send(res, 200, { 'Content-Type': 'application/json' }, encodeGoJson(logs));
    return true;
  }
  const driverStream = /^\/logs\/streams\/([^/]+)\/([^/]+)$/.exec(path);
  const pipelineStream = /^\/logs\/pipeline\/([^/]+)$/.exec(path);
  if (req.method === 'GET' && (driverStream || pipelineStream)) {
    const runid = decodeURIComponent((driverStream ? driverStream[2] : pipelineStream![1]) ?? '');
    const driver = driverStream ? decodeURIComponent(driverStream[1]) : undefined;
    stream(res, deps, runid, driver);
    return true;
  }
  return false;
}

/**
 * Replays stored lines, then forwards live ones verbatim from core NATS (contract §11). Like the
 * server: no `event:`/`id:` fields, a heartbeat comment, and no end of stream (the client decides).
 * The gap between replay and subscribe exists on the server too; here the subscription starts first
 * and replayed lines are not repeated live, which only narrows it.
 */
function stream(res: ServerResponse, deps: LogRouteDeps, runid: string, driver?: string): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
    'Transfer-Encoding': 'chunked',
  });
  // The headers go out now, as a streaming server flushes them, not with the first line: a run
  // with nothing stored yet must still look like an open stream to the client.
  res.flushHeaders();
  const subject = `live.logs.${runid}.${driver ?? '*'}`;
  const replayed = new Set<string>();
  const sub = deps.nc.subscribe(subject, {
    callback: (_err, msg) => {
      const payload = new TextDecoder().decode(msg.data);
      if (!replayed.delete(payload)) res.write(`data: ${payload}\n\n`);
    },
  });
  for (const log of deps.store.queryLogs({ runid, driver })) {
    // Go's encoding, as the server replays from BadgerDB: the same bytes as the live copy.
    const payload = encodeGoJson(log);
    replayed.add(payload);
    res.write(`data: ${payload}\n\n`);
  }
  const heartbeat = setInterval(() => res.write(': heartbeat\n\n'), deps.heartbeatMs);
  res.on('close', () => {
    clearInterval(heartbeat);
    sub.unsubscribe();
  });
}
