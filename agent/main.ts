#!/usr/bin/env node
// Composition root of the agent: the only place that reads argv and touches process.
import { DAEMON_V8_FLAGS, WALK_SEMI_SPACE_MB, growYoungGenerationTo, setHeapFlags } from './heap-flags.js';

// A walk makes many short-lived objects; left alone, V8 grows the young generation to 32 MB
// for them, a fifth of a scan's memory budget, for no speed that shows (at 1M files: peak RSS
// of a manifest 183 -> 143 MB, of a scan 145 -> 107 MB). Set before the agent's modules load
// (hence the dynamic import): loading them alone would already grow it. The walking commands
// hold it at 4 MB a semi-space (faster and smaller than 1 MB, see heap-flags.ts), the others at
// the 1 MB it starts with.
if (['manifest', 'scan', 'audit'].includes(process.argv[2] ?? '')) growYoungGenerationTo(WALK_SEMI_SPACE_MB);
else setHeapFlags('--semi-space-growth-factor=1');
// The daemon idles for hours between small bursts of work, and its full scans run in child
// processes (`scan`, full V8). Without V8's optimising and baseline compilers it stays ~12 MB
// smaller while watching (79 vs 91 MB on the debootstrap minbase), and a 2,000-file burst still
// reaches its report as fast: the hashing is native, the little JS per batch is not hot. Not
// `--lite-mode`: it turns WebAssembly off, and Node's fetch (undici) parses HTTP with it.
// Its young generation is capped at 1 MB per semi-space: the growth factor alone did not keep it
// from growing to 8 MB while the modules load, and the idle daemon then held 5-8 MB of empty
// young pages (its modules loaded, after a full GC: anonymous 20.1-23.5 -> 17.2 MB, and no
// longer bimodal). An event batch allocates little; its scavenges stay short.
if (process.argv[2] === 'run') setHeapFlags(DAEMON_V8_FLAGS);
// Building a manifest hashes every file: its hashing threads start while the rest loads.
if (process.argv[2] === 'manifest' && process.argv.includes('--root')) (await import('./fingerprint/hash-pool.js')).startHashingEarly();
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
