#!/usr/bin/env node
// Composition root of the server: the only place that reads argv and touches process.
import { runServerCli } from './cli.js';

const stopSignal = new Promise<void>((resolve) => {
  process.once('SIGINT', () => resolve());
  process.once('SIGTERM', () => resolve());
});
// The last line of defence, not the fix: every input is bounded and every frame handler catches
// what it throws. An error that still escapes is logged, and the server keeps serving its agents.
if (process.argv[2] === 'start') {
  process.on('uncaughtException', (err) => process.stderr.write(`${new Date().toISOString()} uncaught: ${err.stack ?? err.message}\n`));
  process.on('unhandledRejection', (err) => process.stderr.write(`${new Date().toISOString()} unhandled rejection: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`));
}
const code = await runServerCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  stopSignal,
  readStdin: async (max) => {
    let text = '';
    for await (const chunk of process.stdin) {
      text += String(chunk);
      if (text.length > max) break;
    }
    return text;
  },
});
process.exitCode = code;
// Signal handlers would otherwise keep nothing alive, but make sure a finished command exits.
if (code !== 0 || process.argv[2] !== 'start') process.exit(code);
