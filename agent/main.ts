#!/usr/bin/env node
// Composition root of the agent: the only place that reads argv and touches process.
import { runAgentCli } from './cli.js';

const stopSignal = new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve());
  process.once('SIGTERM', () => resolve());
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
