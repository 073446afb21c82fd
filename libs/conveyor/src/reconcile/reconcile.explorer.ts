import { Injectable } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { RECONCILE_METADATA } from './reconcile.constants';
import type { ReconcileHandlerMeta } from './reconcile.decorator';

/** A `@Reconcile` method found in the app. */
export interface DiscoveredReconcileHandler {
  meta: ReconcileHandlerMeta;
  /** Nest scans only controllers for patterns: a handler on a provider would never run. */
  inController: boolean;
  prototype: object;
  method: string;
}

/** Finds every `@Reconcile` method, in controllers and (by mistake) in providers. */
@Injectable()
export class ReconcileExplorer {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
  ) {}

  explore(): DiscoveredReconcileHandler[] {
    const found: DiscoveredReconcileHandler[] = [];
    const scan = (instance: unknown, inController: boolean) => {
      const prototype = instance && Object.getPrototypeOf(instance);
      if (!prototype) return;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const meta = this.reflector.get<ReconcileHandlerMeta | undefined>(
          RECONCILE_METADATA,
          prototype[method],
        );
        if (meta) found.push({ meta, inController, prototype, method });
      }
    };
    this.discovery.getControllers().forEach((w) => scan(w.instance, true));
    this.discovery.getProviders().forEach((w) => scan(w.instance, false));
    return found;
  }
}
