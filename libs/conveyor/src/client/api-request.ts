import type { IncomingMessage } from 'node:http';
import type * as NestAxios from '@nestjs/axios';
import type { HttpService } from '@nestjs/axios';
import { Logger } from '@nestjs/common';
import type { AxiosResponse } from 'axios';
import { runScope } from '../logger/run-scope';
import type { ConveyorClientConfig } from '../module/client.options';
import { sleep } from '../util/backoff';
import { abortable } from '../util/abortable';
import {
  ConveyorApiError,
  ConveyorApiOutcomeUnknownError,
  ConveyorAuthorizationError,
} from './conveyor-api.error';

/** Default floor of the wait for a stream's headers: above the server's 15 s heartbeat. */
const STREAM_HEADERS_MIN_MS = 30_000;

/** Per-call overrides of the client's settings. */
export interface ApiCallOptions {
  /** Aborts the call (and its retries). Inside a run, the run's `ctx.signal` applies as well. */
  signal?: AbortSignal;
  /** Ceiling of one attempt in ms. */
  timeoutMs?: number;
  /** Extra attempts: of an idempotent call, and of a resource update (read back before each). */
  retries?: number;
}

/** One API request as the client describes it. */
export interface ApiCall {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  body?: unknown;
  /** Safe to send again after a lost or failed response: only then is it retried blindly. */
  idempotent: boolean;
  /**
   * For a call that must not be sent twice blindly but whose effect can be read back (a resource
   * PUT raises its version): it is retried, and before a retry that follows an attempt the server
   * may have applied, and once more after the last attempt, `confirm` reads the server's state.
   */
  confirm?: (signal: AbortSignal | undefined) => Promise<Confirmation>;
}

/**
 * What a {@link ApiCall.confirm} read found: an earlier attempt took effect (`applied`, with the
 * response the call would have had), none did (`not-applied`: sent again), or the state shows
 * another writer's change, so whether ours took effect cannot be told (`conflict`: why).
 */
export type Confirmation = { applied: ApiResponse<unknown> } | 'not-applied' | { conflict: string };

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

  /** @param http the HttpService to send with; default one made by the first request. */
  constructor(
    private http: HttpService | undefined,
    private readonly config: ConveyorClientConfig,
  ) {}

  /**
   * Sends `call`, retrying per its kind: an idempotent call blindly; a call with `confirm` after
   * re-reading when an attempt may have been applied; any other call never. A DELETE whose retry
   * finds nothing after an attempt that may have been applied has succeeded (the first attempt did
   * it).
   * @throws ConveyorApiError for any status >= 300 and when no response arrives;
   *   ConveyorApiOutcomeUnknownError when a call that is not idempotent may have been applied;
   *   ConveyorAuthorizationError when the authorization provider fails (nothing is sent).
   */
  async send<T>(call: ApiCall, options: ApiCallOptions = {}): Promise<ApiResponse<T>> {
    const signal = callSignal(options.signal);
    const retries = call.idempotent || call.confirm ? (options.retries ?? this.config.retries) : 0;
    /** Some attempt may have been applied although it failed: retries must not assume otherwise. */
    let mayHaveBeenApplied = false;
    let last: ConveyorApiError | undefined;
    for (let attempt = 0; ; attempt++) {
      if (last) {
        await this.pause(call, last, attempt, retries, signal);
        if (call.confirm && mayHaveBeenApplied) {
          const confirmed = await this.confirm<T>(call, last, signal, attempt >= retries);
          if (confirmed) return confirmed;
          if (confirmed === null) continue; // the re-read failed: read again after the next pause
          mayHaveBeenApplied = false; // not applied: this attempt is a first one again
        }
      }
      try {
        const response = await this.attempt(call, 'text', signal, options.timeoutMs);
        return { status: response.status, data: parseBody(response) as T };
      } catch (err) {
        if (!(err instanceof ConveyorApiError)) throw err;
        // Nothing to delete now, after an attempt that may have deleted it: that attempt did.
        if (call.method === 'DELETE' && mayHaveBeenApplied && err.isNotFound())
          return { status: err.status, data: undefined as T };
        mayHaveBeenApplied ||= err.mayHaveBeenApplied();
        if (!err.isTransient()) throw err;
        if (attempt < retries) {
          last = err;
          continue;
        }
        if (call.confirm && mayHaveBeenApplied) {
          // No attempt left: one last read tells a late success from a failure.
          await sleep(this.config.retryDelayMs(attempt + 1), signal);
          const confirmed = await this.confirm<T>(call, err, signal, true);
          if (confirmed) return confirmed;
        } else if (!call.idempotent && err.mayHaveBeenApplied()) {
          throw new ConveyorApiOutcomeUnknownError(
            err,
            'the server may have applied it, and it is not sent twice: read the state before trying again',
          );
        }
        throw err;
      }
    }
  }

  /** Waits before retry `attempt`, logging why. @throws ConveyorApiError (`ABORTED`) when the caller aborts. */
  private async pause(
    call: ApiCall,
    failure: ConveyorApiError,
    attempt: number,
    retries: number,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const delayMs = this.config.retryDelayMs(attempt);
    // The error names method, path, status and the server's text only: never a header.
    this.logger.warn(`${failure.message}: retry ${attempt} of ${retries} in ${delayMs} ms`);
    await sleep(delayMs, signal);
    if (signal?.aborted) throw apiError(call, 0, 'aborted by the caller', 'ABORTED');
  }

  /**
   * Reads back whether an earlier attempt of `call` took effect.
   * @returns the response when it did, undefined when it did not, null when the read failed and
   *   more attempts are left.
   * @throws ConveyorApiOutcomeUnknownError when another writer's change hides it, or the read failed on the last attempt.
   */
  private async confirm<T>(
    call: ApiCall,
    failure: ConveyorApiError,
    signal: AbortSignal | undefined,
    lastAttempt: boolean,
  ): Promise<ApiResponse<T> | undefined | null> {
    let confirmation: Confirmation;
    try {
      confirmation = await call.confirm!(signal);
    } catch (err) {
      if (signal?.aborted) throw apiError(call, 0, 'aborted by the caller', 'ABORTED');
      const transient = err instanceof ConveyorApiError && err.isTransient();
      if (transient && !lastAttempt) return null;
      const why = err instanceof Error ? err.message : String(err);
      throw new ConveyorApiOutcomeUnknownError(failure, `reading it back to check failed (${why})`);
    }
    if (confirmation === 'not-applied') return undefined;
    if ('conflict' in confirmation) throw new ConveyorApiOutcomeUnknownError(failure, confirmation.conflict);
    this.logger.log(`${failure.message}: it had been applied (read back), not sent again`);
    return confirmation.applied as ApiResponse<T>;
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
    let sent = false;
    try {
      // Asked before the request exists: a provider's failure is not a network error of the request.
      // Bounded by the attempt's timeout and the caller's abort: a provider stuck on a dead key
      // service must not hold the call (and the run) for ever.
      const asked = await abortable(this.headers(call), controller.signal, 0);
      if (asked.ended !== 'done') {
        if (!timedOut) throw apiError(call, 0, 'aborted by the caller', 'ABORTED');
        throw new ConveyorAuthorizationError(
          call.method,
          call.path,
          new Error(`the authorization provider did not answer within ${timeoutMs} ms`),
        );
      }
      const headers = asked.value;
      sent = true;
      response = await this.httpService().axiosRef.request({
        method: call.method,
        url: `${this.config.apiUrl}${call.path}`,
        headers,
        data: call.body === undefined ? undefined : JSON.stringify(call.body),
        responseType,
        // Bodies are parsed here (JSON or the server's plain-text errors), statuses judged here.
        transformResponse: (data: unknown) => data,
        validateStatus: () => true,
        signal: controller.signal,
        maxRedirects: 0,
      });
    } catch (err) {
      if (err instanceof ConveyorAuthorizationError || err instanceof ConveyorApiError) throw err;
      if (timedOut) throw apiError(call, 0, `no response within ${timeoutMs} ms`, 'ETIMEDOUT');
      // Aborted after the request went out, the server may still apply it: not "surely not sent".
      if (callerSignal?.aborted)
        throw apiError(call, 0, 'aborted by the caller', sent ? 'ABORTED_IN_FLIGHT' : 'ABORTED');
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

  /**
   * The HttpService requests go through. Made on first use: axios and its dependencies (about 60
   * modules) are then loaded only by a driver that calls the API, not by every one that imports
   * the library or injects the client.
   */
  private httpService(): HttpService {
    if (!this.http) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { HttpService } = require('@nestjs/axios') as typeof NestAxios;
      this.http = new HttpService();
    }
    return this.http;
  }

  /** @throws ConveyorAuthorizationError when the authorization provider throws or rejects. */
  private async headers(call: ApiCall): Promise<Record<string, string>> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    let authorization: string | undefined;
    try {
      authorization = await this.config.authorization?.();
    } catch (err) {
      throw new ConveyorAuthorizationError(call.method, call.path, err);
    }
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
