import type { IncomingMessage } from 'node:http';
import type { HttpService } from '@nestjs/axios';
import { Logger } from '@nestjs/common';
import type { AxiosResponse } from 'axios';
import { runScope } from '../logger/run-scope';
import type { ConveyorClientConfig } from '../module/client.options';
import { sleep } from '../util/backoff';
import { ConveyorApiError } from './conveyor-api.error';

/** Default floor of the wait for a stream's headers: above the server's 15 s heartbeat. */
const STREAM_HEADERS_MIN_MS = 30_000;

/** Per-call overrides of the client's settings. */
export interface ApiCallOptions {
  /** Aborts the call (and its retries). Inside a run, the run's `ctx.signal` applies as well. */
  signal?: AbortSignal;
  /** Ceiling of one attempt in ms. */
  timeoutMs?: number;
  /** Extra attempts (idempotent calls only). */
  retries?: number;
}

/** One API request as the client describes it. */
export interface ApiCall {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
  /** Safe to send again after a lost or failed response: only then is it retried. */
  idempotent: boolean;
}

/** A successful response: the status and the body, parsed when it is JSON (`undefined` when empty, e.g. 204). */
export interface ApiResponse<T> {
  status: number;
  data: T;
}

/**
 * Sends API requests through `@nestjs/axios` with the client's rules: `Content-Type: application/json`
 * always (without it Fiber's BodyParser answers 400), the `Authorization` header per attempt, a
 * timeout per attempt, retries with backoff for idempotent calls only, and the caller's and the
 * run's abort signals.
 */
export class ApiRequester {
  private readonly logger = new Logger('ConveyorClient');

  constructor(
    private readonly http: HttpService,
    private readonly config: ConveyorClientConfig,
  ) {}

  /** @throws ConveyorApiError for any status >= 300 and when no response arrives. */
  async send<T>(call: ApiCall, options: ApiCallOptions = {}): Promise<ApiResponse<T>> {
    const signal = callSignal(options.signal);
    const retries = call.idempotent ? (options.retries ?? this.config.retries) : 0;
    for (let attempt = 0; ; attempt++) {
      try {
        const response = await this.attempt(call, 'text', signal, options.timeoutMs);
        return { status: response.status, data: parseBody(response) as T };
      } catch (err) {
        if (!(err instanceof ConveyorApiError) || !err.isTransient() || attempt >= retries) throw err;
        const delayMs = this.config.retryDelayMs(attempt + 1);
        // The error names method, path, status and the server's text only: never a header.
        this.logger.warn(`${err.message}: retry ${attempt + 1} of ${retries} in ${delayMs} ms`);
        await sleep(delayMs, signal);
        if (signal?.aborted) throw apiError(call, 0, 'aborted by the caller', 'ABORTED');
      }
    }
  }

  /**
   * Opens a long-lived response (an SSE stream): the timeout covers the wait for the headers only.
   * Not retried: a stream's caller decides whether to open it again.
   */
  async open(call: ApiCall, signal: AbortSignal, timeoutMs?: number): Promise<IncomingMessage> {
    const headersWithinMs = timeoutMs ?? Math.max(this.config.timeoutMs, STREAM_HEADERS_MIN_MS);
    const response = await this.attempt(call, 'stream', callSignal(signal), headersWithinMs);
    return response.data as IncomingMessage;
  }

  private async attempt(
    call: ApiCall,
    responseType: 'text' | 'stream',
    callerSignal: AbortSignal | undefined,
    timeoutMs = this.config.timeoutMs,
  ): Promise<AxiosResponse> {
    // One controller per attempt: the timeout, or the caller, aborts the request and frees its socket.
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onCallerAbort = () => controller.abort();
    callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
    if (callerSignal?.aborted) controller.abort();
    let response: AxiosResponse;
    try {
      response = await this.http.axiosRef.request({
        method: call.method,
        url: `${this.config.apiUrl}${call.path}`,
        headers: await this.headers(),
        data: call.body === undefined ? undefined : JSON.stringify(call.body),
        responseType,
        // Bodies are parsed here (JSON or the server's plain-text errors), statuses judged here.
        transformResponse: (data: unknown) => data,
        validateStatus: () => true,
        signal: controller.signal,
        maxRedirects: 0,
      });
    } catch (err) {
      if (timedOut) throw apiError(call, 0, `no response within ${timeoutMs} ms`, 'ETIMEDOUT');
      if (callerSignal?.aborted) throw apiError(call, 0, 'aborted by the caller', 'ABORTED');
      // Only the code and message: the axios error holds the request config, headers included.
      const { code, message } = err as { code?: string; message?: string };
      throw apiError(call, 0, message ?? String(err), code ?? 'ERR_NETWORK');
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    }
    if (response.status >= 300) {
      const body =
        responseType === 'stream' ? await readAll(response.data as IncomingMessage) : response.data;
      throw apiError(call, response.status, errorText(body));
    }
    return response;
  }

  private async headers(): Promise<Record<string, string>> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    const authorization = await this.config.authorization?.();
    if (authorization) headers.Authorization = authorization;
    return headers;
  }
}

/** The caller's signal combined with the current run's `ctx.signal`, so an aborted run stops waiting on the API. */
function callSignal(signal: AbortSignal | undefined): AbortSignal | undefined {
  // The run's ReconcileContext, read by its shape: the client sits below the reconcile layer.
  const context = runScope.getStore()?.context as { signal?: unknown } | undefined;
  const runSignal = context?.signal instanceof AbortSignal ? context.signal : undefined;
  if (!runSignal) return signal;
  return signal ? AbortSignal.any([signal, runSignal]) : runSignal;
}

function apiError(call: ApiCall, status: number, body: string, code?: string): ConveyorApiError {
  return new ConveyorApiError(status, body, call.method, call.path, code);
}

/** JSON when it parses as JSON, the text otherwise (`POST /logs` answers `Created`), undefined when empty. */
function parseBody(response: AxiosResponse): unknown {
  const text = typeof response.data === 'string' ? response.data : '';
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** The server's error text: `error` of a JSON body, else the plain-text body (the `/logs` routes). */
function errorText(body: unknown): string {
  const text = typeof body === 'string' ? body : '';
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed?.error === 'string') return parsed.error;
  } catch {
    /* plain text */
  }
  return text.trim().slice(0, 2000);
}

async function readAll(stream: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
