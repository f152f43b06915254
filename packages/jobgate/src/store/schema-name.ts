import { SCHEMA_NAME as IDENTIFIER } from '../support/config.ts';

/** The only identifiers ever interpolated into SQL are checked here, once, at the SQL. */
export function assertSchemaName(schema: string): string {
  if (!IDENTIFIER.test(schema)) {
    throw new Error(`schema name ${JSON.stringify(schema)} must match ${IDENTIFIER} (lowercase letters, digits, underscores)`);
  }
  return schema;
}
