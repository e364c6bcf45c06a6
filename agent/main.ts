#!/usr/bin/env node
// Composition root of the agent: the only place that reads argv and touches process.
import { setHeapFlags } from './heap-flags.js';

// A walk makes many short-lived objects; left alone, V8 grows the young generation to 32 MB
// for them, a fifth of a scan's memory budget, for no speed that shows (at 1M files: peak RSS
// of a manifest 183 -> 143 MB, of a scan 145 -> 107 MB). Set before the agent's modules load
// (hence the dynamic import): loading them alone would already grow it.
setHeapFlags('--semi-space-growth-factor=1');
// The daemon idles for hours between small bursts of work, and its full scans run in child
// processes (`scan`, full V8). Without the optimising compiler (lite mode) it stays ~15 MB smaller
// while watching (76 vs 91 MB on the debootstrap minbase), and a 2,000-file burst still reached its
// report in the same ~0.55 s: the hashing is native, the little JS per batch is not hot.
if (process.argv[2] === 'run') setHeapFlags('--lite-mode');
const { EXIT_ERROR, runAgentCli } = await import('./cli.js');

// The daemon stops cleanly on the first signal; whatever is not listening for it (a baseline
// being recorded, a one-shot command) gets a grace period. Nothing is lost: the outbox is durable.
const stopSignal = new Promise<void>((resolve) => {
  const onSignal = (): void => {
    resolve();
    setTimeout(() => process.exit(EXIT_ERROR), 10_000).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
});

const code = await runAgentCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  interactive: process.stderr.isTTY === true,
  stopSignal,
});
process.exitCode = code;
// Timers of a finished one-shot command (a reconnect, node-cron) must not keep it alive.
process.exit(code);
