/** Injection token of the resolved {@link ConveyorClientConfig} the injectable ConveyorClient uses. */
export const CONVEYOR_CLIENT_CONFIG = Symbol('CONVEYOR_CLIENT_CONFIG');
