export * from './boss.ts';
export * from './embedded-postgres.ts';
export * from './ledger.ts';
export * from './migrate.ts';
export * from './schema-name.ts';
export * from './transaction.ts';
export * from './override.ts';
export * from './admin-store.ts';
