export * from './signing.ts';
export * from './wire.ts';
