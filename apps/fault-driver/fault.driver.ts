import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConveyorApiError,
  ConveyorClient,
  DriverResult,
  Reconcile,
  ReconcileContext,
  Resource,
  RetryableError,
} from '@conveyor-ci/nestjs';

/**
 * What a `fault` resource asks the handler to do: `succeed`; `throw`; `sleep` for `ms` (ending early
 * when the run is aborted, which is how a timeout or a shutdown deadline ends it); `hang`, ignoring
 * the abort; return `data` that cannot be JSON-encoded (`cycle`, `bigint`); return `bytes` of data
 * (`big`, e.g. more than the server's `max_payload`); read the resource back from the Conveyor API
 * (`api`), asking for a retry while the API answers 5xx.
 */
export interface FaultSpec {
  act: 'succeed' | 'throw' | 'sleep' | 'hang' | 'cycle' | 'bigint' | 'big' | 'api';
  ms?: number;
  bytes?: number;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A handler that misbehaves on request, so fault tests can drive every outcome through a real process. */
@Controller()
export class FaultDriver {
  constructor(private readonly client: ConveyorClient) {}

  @Reconcile({ resource: 'fault' })
  async run(@Payload() resource: Resource<FaultSpec>, @Ctx() ctx: ReconcileContext): Promise<DriverResult> {
    const { act, ms = 0, bytes = 0 } = resource.spec ?? ({} as FaultSpec);
    ctx.logger.info(`fault ${act}`, { delivery: ctx.deliveryCount });
    switch (act) {
      case 'succeed':
        return { success: true, message: 'ok' };
      case 'throw':
        throw new Error(`asked to throw (${resource.name})`);
      case 'sleep':
        await sleep(ms, ctx.signal);
        return { success: !ctx.signal.aborted, message: ctx.signal.aborted ? 'aborted' : `slept ${ms} ms` };
      case 'hang':
        await sleep(ms);
        return { success: true, message: `hung ${ms} ms` };
      case 'cycle': {
        const data: Record<string, unknown> = {};
        data.self = data;
        return { success: true, message: 'cycle', data };
      }
      case 'bigint':
        return { success: true, message: 'bigint', data: { n: BigInt(1) } };
      case 'big':
        return { success: true, message: 'big', data: { blob: 'x'.repeat(bytes) } };
      case 'api':
        return this.readBack(resource);
      default:
        return { success: false, message: `unknown act ${JSON.stringify(act)}` };
    }
  }

  private async readBack(resource: Resource): Promise<DriverResult> {
    try {
      // No client-side retries: the case is the run's own retry (a nak with backoff) over an outage.
      const stored = await this.client.getResource(resource.resource, resource.name, { retries: 0 });
      return { success: stored !== null, message: stored ? 'read back' : 'not found' };
    } catch (err) {
      // A 5xx is the API's trouble, not the run's: try again later (nak with backoff).
      if (err instanceof ConveyorApiError && err.status >= 500) throw new RetryableError(`API ${err.status}`);
      throw err;
    }
  }
}
