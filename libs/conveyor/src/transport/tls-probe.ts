import { readFileSync } from 'node:fs';
import { Socket, connect as tcpConnect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ConveyorTlsOptions } from '../module/nats-auth.options';

/** How long the server gets to refuse our certificate after the handshake looks complete. */
const ALERT_WAIT_MS = 1000;

function readOptional(file: string | undefined): Buffer | undefined {
  return file ? readFileSync(file) : undefined;
}

/** The server's first line (INFO), the socket's error (connection refused…), or neither in time. */
function readInfoLine(socket: Socket, timeoutMs: number): Promise<{ line?: string; error?: Error }> {
  return new Promise((resolve) => {
    let text = '';
    const done = (result: { line?: string; error?: Error }) => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      resolve(result);
    };
    const timer = setTimeout(() => done({}), timeoutMs);
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n');
      if (end >= 0) done({ line: text.slice(0, end) });
    });
    socket.once('error', (error) => done({ error }));
  });
}

/**
 * Finds out why a connection to a NATS server fails when nats.js cannot say: it reports only TIMEOUT
 * when, under TLS 1.3, the client's handshake completes before the server checks the client
 * certificate and the server's refusal (an alert) reaches a socket nats.js no longer listens to;
 * and its reconnect loop reports no socket errors at all. This dials like nats.js (INFO in clear,
 * then the TLS upgrade) and returns Node's error (connection refused, the TLS alert, an untrusted
 * server certificate), or undefined when the connection and handshake hold.
 */
export async function probeConnectFailure(
  server: string,
  tls: ConveyorTlsOptions | undefined,
  timeoutMs = 3000,
): Promise<Error | undefined> {
  const url = new URL(server.includes('://') ? server : `nats://${server}`);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || 4222);
  const socket = tcpConnect({ host, port });
  // A probe must never crash the driver: late socket errors (after the answer) are ignored.
  socket.on('error', () => undefined);
  try {
    const { line: info, error } = await readInfoLine(socket, timeoutMs);
    if (error) return error;
    if (!info?.startsWith('INFO ')) return undefined;
    const { tls_required: required } = JSON.parse(info.slice(5)) as { tls_required?: boolean };
    if (!required && !tls) return undefined;
    return await new Promise<Error | undefined>((resolve) => {
      const secure = tlsConnect({
        socket,
        servername: isIP(host) ? undefined : host,
        ca: readOptional(tls?.ca),
        cert: readOptional(tls?.cert),
        key: readOptional(tls?.key),
      });
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      const finish = (err: Error | undefined) => {
        clearTimeout(timer);
        secure.removeAllListeners();
        secure.on('error', () => undefined);
        secure.destroy();
        resolve(err);
      };
      secure.once('error', (err) => finish(err));
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        setTimeout(() => finish(undefined), ALERT_WAIT_MS);
      });
    });
  } catch {
    return undefined;
  } finally {
    socket.destroy();
  }
}
