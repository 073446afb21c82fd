import { LokiServer } from './loki.server';

/** Realistic nanosecond timestamps: `t(1)` is 1 ns after 2023-11-14T22:13:20Z. */
export const BASE_NS = 1_700_000_000_000_000_000n;
export const t = (offset: number): string => (BASE_NS + BigInt(offset)).toString();

export const stream = (labels: Record<string, unknown>, ...values: unknown[][]) => ({
  stream: labels,
  values,
});
export const oneLine = { streams: [stream({ driver: 'shell-runner' }, [t(1), 'hello'])] };

export function push(
  loki: LokiServer,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${loki.url}/loki/api/v1/push`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body),
  });
}

export function queryRange(loki: LokiServer, params: Record<string, string>): Promise<Response> {
  return fetch(`${loki.url}/loki/api/v1/query_range?${new URLSearchParams(params)}`);
}

export interface QueryBody {
  data: { result: { stream: Record<string, string>; values: [string, string][] }[] };
}

/** The lines of a query_range answer in response order, streams one after the other. */
export async function lines(res: Response): Promise<string[]> {
  expect(res.status).toBe(200);
  const body = (await res.json()) as QueryBody;
  return body.data.result.flatMap((s) => s.values.map(([, line]) => line));
}
