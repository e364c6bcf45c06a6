#!/usr/bin/env node
// Composition root of the agent: the only place that reads argv and touches process.
import { setFlagsFromString } from 'node:v8';
import { runAgentCli } from './cli.js';

// A walk makes many short-lived objects; left alone, V8 grows the young generation to 32 MB
// for them, a fifth of a scan's memory budget, for no speed that shows (bench:growth at 1M
// files: peak RSS of a manifest 183 -> 143 MB, of a scan 145 -> 107 MB).
setFlagsFromString('--semi-space-growth-factor=1');

const code = await runAgentCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  interactive: process.stderr.isTTY === true,
});
process.exitCode = code;
