export * from './peer.ts';
export * from './fetcher-client.ts';
export * from './main-client.ts';
export * from './errors.ts';
