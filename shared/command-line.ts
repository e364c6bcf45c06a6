// The command-line frame both tools share: help, unknown commands, strict option parsing, and
// every error turned into one line and exit code 2. Node-only (node:util), like the tools.
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { isQuicksandError } from './errors.js';

export const EXIT_OK = 0;
export const EXIT_USAGE_OR_ERROR = 2;

export interface CommandLine<C extends string> {
  /** The program's name, as messages print it: `quicksand-agent`. */
  tool: string;
  usage: string;
  help: Readonly<Record<string, string>>;
  options: Readonly<Record<C, ParseArgsConfig['options']>>;
}

export interface CommandLineIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

/**
 * Runs one command line: `--help`/`help [COMMAND]` print help, an unknown command or option is
 * named with a pointer to `--help`, and `run` gets the parsed options. Never throws: a user's
 * mistake is one line on stderr, a bug is reported as one with its stack; both exit 2.
 */
export async function runCommandLine<C extends string>(
  spec: CommandLine<C>,
  argv: readonly string[],
  io: CommandLineIo,
  run: (command: C, values: OptionValues, positionals: string[]) => Promise<number>,
): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    const topic = rest[0];
    io.stdout(topic !== undefined && topic in spec.help ? spec.help[topic]! : spec.usage);
    return command === undefined ? EXIT_USAGE_OR_ERROR : EXIT_OK;
  }
  if (!Object.hasOwn(spec.options, command)) {
    io.stderr(`${spec.tool}: unknown command "${command}". Commands: ${Object.keys(spec.options).join(', ')}. See ${spec.tool} --help.\n`);
    return EXIT_USAGE_OR_ERROR;
  }
  const cmd = command as C;
  try {
    const { values, positionals } = parseArgs({ args: [...rest], options: spec.options[cmd], strict: true, allowPositionals: true });
    if ((values as OptionValues).help) {
      io.stdout(spec.help[cmd] ?? spec.usage);
      return EXIT_OK;
    }
    return await run(cmd, values as OptionValues, positionals);
  } catch (err) {
    const where = `${spec.tool} ${cmd}`;
    if (isQuicksandError(err)) {
      const hint = err.code === 'USAGE' ? ` (see ${where} --help)` : '';
      io.stderr(`${where}: ${err.message}${hint}\n`);
    } else if ((err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      io.stderr(`${where}: ${(err as Error).message} (see ${where} --help)\n`);
    } else {
      // A bug, not a user mistake: say so, keep the stack for whoever files it.
      io.stderr(`${where}: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\nPlease report this with the command you ran.\n`);
    }
    return EXIT_USAGE_OR_ERROR;
  }
}

/** One command of a tool: its help text, its options and its body. */
export interface Command<Io> {
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run: (values: OptionValues, positionals: string[], io: Io) => Promise<number>;
}

/**
 * `runCommandLine` over commands loaded on demand: only the one named (to run it or to show its
 * help) is imported, so a command starts without the modules of the others.
 */
export async function runLazyCommandLine<Io extends CommandLineIo>(
  tool: string,
  usage: string,
  commands: Readonly<Record<string, () => Promise<Command<Io>>>>,
  argv: readonly string[],
  io: Io,
): Promise<number> {
  const [first, second] = argv;
  const name = first === undefined || first === '--help' || first === '-h' || first === 'help' ? second : first;
  const command = name !== undefined && Object.hasOwn(commands, name) ? await commands[name]!() : undefined;
  const spec: CommandLine<string> = {
    tool,
    usage,
    help: command === undefined ? {} : { [name!]: command.help },
    // Every name, for the list an unknown command is answered with; only the named one's options are parsed.
    options: Object.fromEntries(Object.keys(commands).map((c) => [c, c === name && command !== undefined ? command.options : {}])),
  };
  return runCommandLine(spec, argv, io, (_cmd, values, positionals) => command!.run(values, positionals, io));
}
