/** Injection token of the resolved {@link ConveyorConfig}. */
export const CONVEYOR_CONFIG = Symbol.for('conveyor-ci:config');
