import { abortable } from '../../util/abortable';

/** What an HTTP request was answered with, its body read. */
export interface HttpAnswer {
  ok: boolean;
  status: number;
  text: string;
}

/**
 * One request, over in `timeoutMs` whatever the server does (or at once when `stopping` fires).
 * The abort signal alone is not enough: Node 20's fetch (undici) can lose the link between a
 * request and the signal it was given once the collector has run (nodejs/node#55428), and a
 * request to a Loki that never answers then hangs for good (fault case 7 saw the Loki sink send
 * nothing for minutes, every line waiting behind one push). So the deadline also settles the wait
 * itself; the abort still frees the socket when it reaches undici.
 */
export async function fetchWithin(
  url: string,
  init: { method?: string; headers: Record<string, string>; body?: Buffer },
  timeoutMs: number,
  stopping?: AbortSignal,
): Promise<HttpAnswer> {
  if (stopping?.aborted) throw new Error('stopped before the request');
  const controller = new AbortController();
  const answered = (async (): Promise<HttpAnswer> => {
    const response = await fetch(url, { ...init, signal: controller.signal });
    const text = await response.text().catch(() => '');
    return { ok: response.ok, status: response.status, text };
  })();
  const done = await abortable(answered, stopping, timeoutMs);
  if (done.ended === 'done') return done.value;
  const reason = new Error(
    done.ended === 'timed-out' ? `no answer within ${timeoutMs} ms` : 'stopped during the request',
  );
  controller.abort(reason);
  throw reason;
}
