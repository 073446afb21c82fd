import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { ConveyorClient } from '../client/conveyor.client';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import { ConveyorStartupError } from '../module/startup.error';
import type { ResourceDefinition } from '../protocol';
import { ReconcileExplorer } from '../reconcile/reconcile.explorer';
import { schemaHash } from './schema-hash';
import type { SpecValidator } from './spec-validator';

/** The longest the startup check waits for the API: a driver must not hang on it. */
const DRIFT_CHECK_TIMEOUT_MS = 3000;

/** How one generated validator's definition differs from the server's. */
export interface DefinitionDrift {
  definition: string;
  /** The version the code was generated from. */
  generated: string;
  /** The server's version; undefined when the server has no such definition. */
  server?: string;
  /** `version`: a new version; `schema`: the schema changed under the same version; `missing`: gone. */
  change: 'version' | 'schema' | 'missing';
}

/** One line per drift, for a person: which definition, and what changed. */
export function describeDrift(drift: DefinitionDrift): string {
  switch (drift.change) {
    case 'missing':
      return `"${drift.definition}" (generated from version ${drift.generated}) is not defined on the server`;
    case 'version':
      return `"${drift.definition}" is version ${drift.server} on the server, the code was generated from ${drift.generated}`;
    case 'schema':
      return `"${drift.definition}" changed its schema on the server under the same version ${drift.generated}`;
  }
}

/**
 * Compares each validator's definition with the server's: version first, then the schema (its
 * hash, keys sorted), since a definition may change without a new version. Each definition once.
 */
export async function findDefinitionDrift(
  validators: SpecValidator[],
  fetch: (name: string) => Promise<ResourceDefinition | null>,
): Promise<DefinitionDrift[]> {
  const byName = new Map(validators.map((v) => [v.definition, v]));
  const drifts = await Promise.all(
    [...byName.values()].map(async (validator): Promise<DefinitionDrift | undefined> => {
      const { definition, version: generated } = validator;
      const server = await fetch(definition);
      if (!server) return { definition, generated, change: 'missing' };
      if ((server.version ?? '') !== generated)
        return { definition, generated, server: server.version ?? '', change: 'version' };
      if (schemaHash(server.schema) !== validator.schemaHash)
        return { definition, generated, server: server.version ?? '', change: 'schema' };
      return undefined;
    }),
  );
  return drifts.filter((d): d is DefinitionDrift => d !== undefined);
}

/**
 * The startup check of `@Reconcile({ spec })` validators against the server's definitions (events
 * carry no definition version, so a definition that changed under a running driver is caught
 * here rather than deep in a handler). Policy `resourceDrift`: warn, refuse to start, or off.
 */
@Injectable()
export class ResourceDriftCheck implements OnApplicationBootstrap {
  private readonly log = new Logger('ConveyorResources');

  constructor(
    @Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig,
    @Inject(ConveyorClient) private readonly client: ConveyorClient,
    @Inject(ReconcileExplorer) private readonly explorer: ReconcileExplorer,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const policy = this.config.resourceDrift;
    if (policy === 'off') return;
    const validators = this.explorer
      .explore()
      .map((h) => h.meta.spec)
      .filter((v): v is SpecValidator => v !== undefined);
    if (validators.length === 0) return;
    let drifts: DefinitionDrift[];
    const options = { timeoutMs: Math.min(this.client.config.timeoutMs, DRIFT_CHECK_TIMEOUT_MS), retries: 0 };
    try {
      drifts = await findDefinitionDrift(validators, (name) =>
        this.client.getResourceDefinition(name, options),
      );
    } catch (err) {
      // Unreachable or failing: nothing to compare with, so nothing to refuse.
      this.log.warn(
        `could not compare the generated resource definitions with ${this.client.apiUrl}: ${(err as Error).message}`,
      );
      return;
    }
    if (drifts.length === 0) {
      this.log.log(
        `resource definitions match the server: ${[...new Set(validators.map((v) => `${v.definition} ${v.version}`))].join(', ')}`,
      );
      return;
    }
    const message =
      `resource definitions changed on the server since the code was generated: ${drifts.map(describeDrift).join('; ')}. ` +
      'Regenerate (`conveyor-nestjs generate`) and review the handlers; until then a spec that no longer ' +
      'matches the generated validator ends its run as a failure';
    if (policy === 'refuse') throw new ConveyorStartupError(`${message} (resourceDrift: refuse)`);
    this.log.warn(message);
  }
}
