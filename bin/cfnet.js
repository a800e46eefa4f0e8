#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (npm run build).
// `cfnet agent` goes straight to the agent's lean entry point: the agent runs on every cell for
// its whole life, and the full CLI would load every component's modules (tens of MB resident).
if (process.argv[2] === 'agent') {
  process.argv.splice(2, 1);
  await import('../dist/agent/main.js');
} else {
  const { main } = await import('../dist/cli/main.js');
  main(process.argv).catch((err) => {
    process.stderr.write(`cfnet: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
