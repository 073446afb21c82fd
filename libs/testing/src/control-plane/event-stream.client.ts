/**
 * Reads a server-sent-events stream (the API's log streams) and calls `onData` with each event's
 * `data:` payload; comment lines (`: heartbeat`) are skipped. Resolves when the stream ends or
 * `signal` aborts; never rejects (the server's streams never end by themselves, contract §11).
 */
export async function readEventStream(
  url: string,
  onData: (data: string) => void,
  signal: AbortSignal,
  headers: Record<string, string> = {},
): Promise<void> {
  try {
    const response = await fetch(url, { signal, headers });
    const decoder = new TextDecoder();
    let pending = '';
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      // `stream: true` keeps a character split across chunks intact.
      pending += decoder.decode(chunk, { stream: true });
      const events = pending.split('\n\n');
      pending = events.pop()!;
      for (const event of events) if (event.startsWith('data: ')) onData(event.slice(6));
    }
  } catch {
    /* aborted, or the server went away */
  }
}
