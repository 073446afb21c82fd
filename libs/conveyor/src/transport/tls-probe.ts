import { readFileSync } from 'node:fs';
import { Socket, connect as tcpConnect, isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ConveyorTlsOptions } from '../module/nats-auth.options';

/** How long the server gets to refuse our certificate after the handshake looks complete. */
const ALERT_WAIT_MS = 1000;

function readOptional(file: string | undefined): Buffer | undefined {
  return file ? readFileSync(file) : undefined;
}

/** The server's first line (INFO), or undefined when it sends none in time. */
function readInfoLine(socket: Socket, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    let text = '';
    const done = (line?: string) => {
      clearTimeout(timer);
      socket.removeAllListeners('data');
      resolve(line);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      const end = text.indexOf('\r\n');
      if (end >= 0) done(text.slice(0, end));
    });
    socket.once('error', () => done(undefined));
  });
}

/**
 * Finds out why a TLS connection to a NATS server fails when nats.js can only say TIMEOUT: under TLS
 * 1.3 the client's handshake completes before the server checks the client certificate, and the
 * server's refusal (an alert) then reaches a socket nats.js no longer listens to. This dials like
 * nats.js (INFO in clear, then the TLS upgrade) and reports the alert or handshake error as Node's
 * error (code and message), or undefined when the handshake holds.
 */
export async function probeTlsFailure(
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
    const info = await readInfoLine(socket, timeoutMs);
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
