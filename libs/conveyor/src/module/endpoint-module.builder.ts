import { ConfigurableModuleBuilder, Controller, type Type } from '@nestjs/common';

/** The extras of an endpoint module's `forRoot`/`forRootAsync`. */
export interface EndpointModuleExtras {
  /** Provide the module's exports app-wide. */
  isGlobal: boolean;
  /** Where the endpoint is served; `false`: no route (the app serves it with its own controller). */
  path: string | false;
}

/**
 * The configurable module class both HTTP endpoint modules (health, metrics) are built on:
 * `forRoot`/`forRootAsync` with the options under `token`, plus `isGlobal` and `path`.
 */
export function endpointModuleClass<Options extends object>(
  token: string | symbol,
  defaultPath: string,
  controller: Type<object>,
  /** The served controller's class name (Nest's route log names it). */
  endpointName: string,
) {
  // Nest reads a controller's path from its class, so each path gets a subclass of its own.
  const controllerAt = (path: string): Type<object> => {
    const Endpoint = { [endpointName]: class extends controller {} }[endpointName];
    Controller(path)(Endpoint);
    return Endpoint;
  };
  return new ConfigurableModuleBuilder<Options>({ optionsInjectionToken: token })
    .setClassMethodName('forRoot')
    .setExtras<EndpointModuleExtras>({ isGlobal: false, path: defaultPath }, (definition, extras) => ({
      ...definition,
      global: extras.isGlobal,
      controllers: extras.path === false ? [] : [controllerAt(extras.path)],
    }))
    .build().ConfigurableModuleClass;
}
