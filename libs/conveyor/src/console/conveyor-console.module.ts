import {
  Controller,
  DynamicModule,
  Get,
  Inject,
  Injectable,
  Module,
  OnApplicationBootstrap,
  OnApplicationShutdown,
  OnModuleInit,
  Post,
  Req,
  Res,
  Type,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { ServerResponse } from 'node:http';
import { ConveyorClient } from '../client/conveyor.client';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import { runtimeSingleton } from '../module/runtime-lookup';
import { ConveyorStrategy } from '../transport/conveyor.strategy';
import { ConsoleResponse, handleConsoleRequest } from './console-http';
import { ConsoleTracker } from './console-tracker';

/** Options of {@link ConveyorConsoleModule.register}. */
export interface ConveyorConsoleOptions {
  /**
   * Serve the console. Default: env `CONVEYOR_CONSOLE=true`, else off: the page can cancel runs
   * and replay dead letters, so it is mounted only on purpose, where only developers reach it.
   */
  enabled?: boolean;
  /** Where it is served. Default: env `CONVEYOR_CONSOLE_PATH`, else `/conveyor/console`. */
  path?: string;
}

/** Holds the tracker of this app's console, over the transport's NATS connection. */
@Injectable()
export class ConveyorConsoleService implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private runtime?: { tracker: ConsoleTracker; strategy: ConveyorStrategy };

  constructor(@Inject(ModuleRef) private readonly moduleRef: ModuleRef) {}

  /** Finds the runtime once Nest made it (not in the constructor: it may not exist yet). */
  onModuleInit(): void {
    // Found however ConveyorModule was imported (global or not), like the health probes.
    const strategy = runtimeSingleton(this.moduleRef, ConveyorStrategy, 'ConveyorConsoleModule');
    const config = runtimeSingleton<ConveyorConfig>(this.moduleRef, CONVEYOR_CONFIG, 'ConveyorConsoleModule');
    const client = runtimeSingleton(this.moduleRef, ConveyorClient, 'ConveyorConsoleModule');
    const tracker = new ConsoleTracker({
      connection: () => {
        try {
          return strategy.dials ? strategy.unwrap() : undefined;
        } catch {
          return undefined; // not connected yet
        }
      },
      deadLetterSubject: config.deadLetterSubject,
      // One attempt: the live lines stay on screen when the API does not answer.
      storedLogs: (runId) => client.getLogs({ runid: runId }, { timeoutMs: 5_000, retries: 0 }),
      cancelTtlMs: config.cancelTtlMs,
    });
    this.runtime = { tracker, strategy };
  }

  get tracker(): ConsoleTracker {
    if (!this.runtime) this.onModuleInit();
    return this.runtime!.tracker;
  }

  /** Watches from the transport's first connection on, not from the first page view: runs are seen whole. */
  onApplicationBootstrap(): void {
    const { strategy, tracker } = this.runtime ?? (this.onModuleInit(), this.runtime!);
    // Not `strategy.dials`: the transport listens only after bootstrap. A transport that never
    // dials never resolves this, which holds nothing (no timer, no socket).
    void strategy.whenConnected().then(() => tracker.start());
  }

  onApplicationShutdown(): void {
    this.runtime?.tracker.close();
  }
}

/** Express and Fastify requests alike: what the console reads of one. */
interface AnyRequest {
  method: string;
  body?: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** The console's controller at `path`: Nest reads a controller's path from its class. */
function consoleControllerAt(path: string): Type<unknown> {
  @Controller(path)
  class ConveyorConsoleController {
    constructor(@Inject(ConveyorConsoleService) private readonly console: ConveyorConsoleService) {}

    @Get()
    page(@Req() req: AnyRequest, @Res() res: unknown): Promise<void> {
      return this.serve(req, res, '');
    }

    @Get('api/state')
    state(@Req() req: AnyRequest, @Res() res: unknown): Promise<void> {
      return this.serve(req, res, '/api/state');
    }

    @Post('api/runs/:runId/cancel')
    cancel(@Req() req: AnyRequest & { params: { runId: string } }, @Res() res: unknown): Promise<void> {
      return this.serve(req, res, `/api/runs/${encodeURIComponent(req.params.runId)}/cancel`);
    }

    @Post('api/dead-letters/:id/replay')
    replay(@Req() req: AnyRequest & { params: { id: string } }, @Res() res: unknown): Promise<void> {
      return this.serve(req, res, `/api/dead-letters/${encodeURIComponent(req.params.id)}/replay`);
    }

    private async serve(req: AnyRequest, res: unknown, subpath: string): Promise<void> {
      const answer: ConsoleResponse = (await handleConsoleRequest(this.console.tracker, `/${path}`, {
        method: req.method,
        path: subpath,
        body: req.body,
        headers: req.headers,
      })) ?? { status: 404, headers: {}, body: '' };
      // Fastify hands a reply whose Node response is `raw`; Express's response is one.
      const raw = ((res as { raw?: ServerResponse }).raw ?? res) as ServerResponse;
      raw.writeHead(answer.status, answer.headers);
      raw.end(answer.body);
    }
  }
  return ConveyorConsoleController;
}

/**
 * The run console (issue 29) in a driver app: live drivers, runs with progress and logs, cancel,
 * dead letters with replay, as one page at `path`. Off unless enabled; needs `ConveyorModule` and
 * an attached transport (it watches over the transport's NATS connection).
 * @example
 * ```ts
 * @Module({ imports: [ConveyorModule.forRoot({ driverName: 'builder' }), ConveyorConsoleModule.register({ enabled: true })] })
 * ```
 */
@Module({})
export class ConveyorConsoleModule {
  /** The console at `path` when `enabled` (see {@link ConveyorConsoleOptions}); nothing otherwise. */
  static register(options: ConveyorConsoleOptions = {}): DynamicModule {
    const enabled = options.enabled ?? process.env.CONVEYOR_CONSOLE === 'true';
    if (!enabled) return { module: ConveyorConsoleModule };
    const path = (options.path ?? process.env.CONVEYOR_CONSOLE_PATH ?? '/conveyor/console').replace(
      /^\/+|\/+$/g,
      '',
    );
    return {
      module: ConveyorConsoleModule,
      providers: [ConveyorConsoleService],
      controllers: [consoleControllerAt(path)],
    };
  }
}
