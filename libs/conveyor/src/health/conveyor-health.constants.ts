/** The {@link ConveyorHealthOptions} given to `ConveyorHealthModule.forRoot()` or made by `forRootAsync()`'s factory. */
export const CONVEYOR_HEALTH_OPTIONS = Symbol('CONVEYOR_HEALTH_OPTIONS');
