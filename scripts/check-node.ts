// npm scripts must run on the Node 24 that the `node` devDependency brings. If its install script
// was skipped (--ignore-scripts), they silently fall back to the system Node: say so loudly.
if (!process.version.startsWith('v24.')) {
  console.error(`jobgate needs Node 24 but npm scripts run on ${process.version}: the "node" devDependency was not installed. Run: npm rebuild node`);
  process.exit(1);
}
