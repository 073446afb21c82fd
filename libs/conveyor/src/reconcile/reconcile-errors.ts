import type { INestApplication } from '@nestjs/common';
import { INTERCEPTORS_METADATA, PIPES_METADATA, ROUTE_ARGS_METADATA } from '@nestjs/common/constants';
import { catchError, isObservable, throwError } from 'rxjs';
import { runScope } from '../logger/run-scope';
import { ReconcileContext, recordThrown } from './reconcile-context';
import { ReconcileOutcomeInterceptor } from './reconcile-outcome.interceptor';

type Method = (...args: unknown[]) => unknown;

const outcomeInterceptor = new ReconcileOutcomeInterceptor();

/**
 * Wraps a `@Reconcile` method so what it throws (or rejects or errors with) is recorded on its
 * run's context before Nest's RPC exception layer turns a non-RpcException into "Internal server
 * error". A plain function around the call, where an interceptor would cost an rxjs pipeline and
 * an AsyncResource per message (a fifth of a no-op run's CPU). Metadata of decorators applied
 * before `@Reconcile` moves to the wrapper.
 */
export function recordingErrorsOf(original: Method): Method {
  const wrapped = function (this: unknown, ...args: unknown[]): unknown {
    const ctx = contextOf(args);
    try {
      const out = original.apply(this, args);
      if (!ctx) return out;
      if (out instanceof Promise) {
        return out.catch((error: unknown) => {
          recordThrown(ctx, error);
          throw error;
        });
      }
      if (isObservable(out)) {
        return out.pipe(
          catchError((error: unknown) => {
            recordThrown(ctx, error);
            return throwError(() => error);
          }),
        );
      }
      return out;
    } catch (error) {
      if (ctx) recordThrown(ctx, error);
      throw error;
    }
  };
  for (const key of Reflect.getMetadataKeys(original)) {
    Reflect.defineMetadata(key, Reflect.getMetadata(key, original), wrapped);
  }
  Object.defineProperty(wrapped, 'name', { value: original.name });
  return wrapped;
}

/** The run's context: an argument (`@Ctx()`), else the run scope (a handler without `@Ctx()`). */
function contextOf(args: unknown[]): ReconcileContext | undefined {
  for (const arg of args) if (arg instanceof ReconcileContext) return arg;
  const context = runScope.getStore()?.context;
  return context instanceof ReconcileContext ? context : undefined;
}

/**
 * Pipes run before the method, so a pipe's error can only be seen from an interceptor. Where a
 * pipe can run (global, class, method or parameter pipes), the outcome interceptor is added as the
 * innermost one; elsewhere the method wrapper is enough. Call before Nest builds the handlers.
 */
export function applyOutcomeInterceptors(
  app: INestApplication,
  handlers: { prototype: object; method: string }[],
): void {
  const globalPipes = globalPipeCount(app);
  for (const { prototype, method } of handlers) {
    const fn = (prototype as Record<string, Method>)[method];
    if (globalPipes === 0 && !hasPipes(prototype, method, fn)) continue;
    const existing: unknown[] = Reflect.getMetadata(INTERCEPTORS_METADATA, fn) ?? [];
    if (existing.some((i) => i instanceof ReconcileOutcomeInterceptor)) continue;
    // An instance: Nest registers interceptor classes as injectables while scanning, which is over.
    Reflect.defineMetadata(INTERCEPTORS_METADATA, [...existing, outcomeInterceptor], fn);
  }
}

function hasPipes(prototype: object, method: string, fn: Method): boolean {
  if ((Reflect.getMetadata(PIPES_METADATA, fn) ?? []).length > 0) return true;
  if ((Reflect.getMetadata(PIPES_METADATA, prototype.constructor) ?? []).length > 0) return true;
  const params: Record<string, { pipes?: unknown[] }> =
    Reflect.getMetadata(ROUTE_ARGS_METADATA, prototype.constructor, method) ?? {};
  return Object.values(params).some((p) => (p.pipes ?? []).length > 0);
}

/** Global pipes (`useGlobalPipes`, `APP_PIPE`); unknown counts as some, so errors are never lost. */
function globalPipeCount(app: INestApplication): number {
  const config = (
    app as unknown as {
      config?: { getGlobalPipes?: () => unknown[]; getGlobalRequestPipes?: () => unknown[] };
    }
  ).config;
  if (!config?.getGlobalPipes) return 1;
  return config.getGlobalPipes().length + (config.getGlobalRequestPipes?.().length ?? 0);
}
