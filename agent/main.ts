#!/usr/bin/env node
// Composition root of the agent: the only place that reads argv and touches process.
import { runAgentCli } from './cli.js';

const code = await runAgentCli(process.argv.slice(2), {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  interactive: process.stderr.isTTY === true,
});
process.exitCode = code;
