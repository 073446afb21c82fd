import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import {
  ConveyorApiError,
  ConveyorApiOutcomeUnknownError,
  RetryableError,
  ConveyorClient,
  DriverResult,
  Reconcile,
  ReconcileContext,
  Resource,
  previousResult,
} from '@conveyor-ci/nestjs';
import { REPORT_DEFINITION, buildReport } from './report';

/** Token of the driver whose result is reported (env `REPORT_SOURCE_DRIVER`, default `shell-runner`). */
export const REPORT_SOURCE_DRIVER = Symbol('REPORT_SOURCE_DRIVER');

/** `data` of report-writer's results. */
export interface ReportWriterData {
  report: string;
  /** `created`, or `replaced` when a redelivery found the report already there. */
  action: 'created' | 'replaced';
}

/**
 * The second example driver, built on the ConveyorClient: as a later pipeline step, it reads the
 * result an earlier step's driver (default `shell-runner`) left on the resource and writes it down
 * as a `report` resource through the API.
 */
@Controller()
export class ReportWriterDriver {
  private definitionApplied?: Promise<unknown>;

  constructor(
    private readonly client: ConveyorClient,
    @Inject(REPORT_SOURCE_DRIVER) private readonly sourceDriver: string,
  ) {}

  @Reconcile({ resource: 'pipeline' })
  async run(
    @Payload() resource: Resource,
    @Ctx() ctx: ReconcileContext,
  ): Promise<DriverResult<ReportWriterData>> {
    const result = previousResult(resource, this.sourceDriver);
    if (!result) {
      return {
        success: false,
        message: `${resource.name} carries no result of "${this.sourceDriver}": run report-writer as a later step than it`,
      };
    }
    await this.applyDefinition();
    const report = buildReport(resource, result, ctx.runId);
    const action = await this.createOrReplace(report);
    ctx.logger.info(`report ${report.name} ${action}: ${report.spec.summary}`);
    return {
      success: true,
      message: `report ${report.name} ${action}`,
      data: { report: report.name, action },
    };
  }

  /** Once per process; a failure (the API is down) is retried by the next run. */
  private applyDefinition(): Promise<unknown> {
    this.definitionApplied ??= this.client
      .createOrUpdateResourceDefinition(REPORT_DEFINITION)
      .catch((err) => {
        this.definitionApplied = undefined;
        throw err;
      });
    return this.definitionApplied;
  }

  /**
   * A redelivered run (at-least-once) finds its report already created: creates are never retried
   * by the client, so "already exists" is answered with an update here. A create that got no
   * answer may have been applied: the run is retried, and the next attempt finds out which.
   */
  private async createOrReplace(report: Resource): Promise<ReportWriterData['action']> {
    try {
      await this.client.createResource(report);
      return 'created';
    } catch (err) {
      if (err instanceof ConveyorApiOutcomeUnknownError)
        throw new RetryableError(`creating report ${report.name}: ${err.message}`);
      if (!(err instanceof ConveyorApiError) || !/already exists/i.test(err.body)) throw err;
      await this.client.updateResource(report);
      return 'replaced';
    }
  }
}
