export * from './wire.types';
export * from './subjects';
export * from './codec';
