export * from './signing.ts';
export * from './wire.ts';
export * from './express.ts';
export * from './routes.ts';
