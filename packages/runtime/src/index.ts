export * from './errors.ts';
export * from './logger.ts';
export * from './http.ts';
export * from './shutdown.ts';
export * from './config.ts';
export * from './http-server.ts';
export * from './metrics.ts';
export * from './trace.ts';
