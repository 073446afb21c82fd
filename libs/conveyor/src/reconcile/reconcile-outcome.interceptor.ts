import { CallHandler, ExecutionContext, Injectable, NestInterceptor } from '@nestjs/common';
import { Observable, catchError, throwError } from 'rxjs';
import { ReconcileContext, recordThrown } from './reconcile-context';

/**
 * Applied by `@Reconcile` at method level, so it is the innermost interceptor: it sees the error
 * the handler or a pipe threw before Nest's RPC exception layer turns any non-RpcException into
 * "Internal server error". The error is rethrown unchanged, so user filters still see it.
 */
@Injectable()
export class ReconcileOutcomeInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const ctx = context.switchToRpc().getContext();
    if (!(ctx instanceof ReconcileContext)) return next.handle();
    return next.handle().pipe(
      catchError((error: unknown) => {
        recordThrown(ctx, error);
        return throwError(() => error);
      }),
    );
  }
}
