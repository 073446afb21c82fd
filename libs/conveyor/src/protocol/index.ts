export * from './wire.types';
export * from './subjects';
export * from './codec';
export * from './run-control.subjects';
