/** The only identifiers ever interpolated into SQL: checked here, once. */
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export function assertSchemaName(schema: string): string {
  if (!IDENTIFIER.test(schema)) {
    throw new Error(`schema name ${JSON.stringify(schema)} must match ${IDENTIFIER} (lowercase letters, digits, underscores)`);
  }
  return schema;
}
