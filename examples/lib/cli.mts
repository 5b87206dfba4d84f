// Command-line flags for the examples: Node's parseArgs (strict), --help, and
// numeric flags checked with a message naming the flag. A bad flag prints
// `<program>: <what is wrong>` on stderr and exits with status 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
const HELP_OPTION = { help: { type: 'boolean', short: 'h', default: false } } as const;
type Config<O extends Options> = { args: string[]; strict: true; options: O & typeof HELP_OPTION };
/** The parsed values: a string (or undefined without a default) per string option, a boolean per boolean one. */
export type Flags<O extends Options> = ReturnType<typeof parseArgs<Config<O>>>['values'];

/** Prints `program: message` on stderr and exits with status 2 (a usage error). */
export function usageError(program: string, message: string): never {
  process.stderr.write(`${program}: ${message}\n`);
  process.exit(2);
}

/**
 * The flags of process.argv (or `argv`) by the given parseArgs options, plus
 * --help/-h, which prints `help` and exits 0. An unknown or malformed flag is
 * a usage error that shows `help`.
 */
export function parseFlags<const O extends Options>(
  program: string,
  help: string,
  options: O,
  argv: string[] = process.argv.slice(2),
): Flags<O> {
  const config: Config<O> = { args: argv, strict: true, options: { ...options, ...HELP_OPTION } };
  let values: Flags<O>;
  try {
    values = parseArgs(config).values;
  } catch (e) {
    usageError(program, `${e instanceof Error ? e.message : String(e)}\n\n${help}`);
  }
  if ((values as { help?: boolean }).help) {
    process.stdout.write(help);
    process.exit(0);
  }
  return values;
}

/** The integer given for --`name` (at least `min`), or `fallback` when the flag is absent. */
export function integerFlag(
  program: string,
  name: string,
  text: string | undefined,
  fallback: number,
  min = 1,
): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) usageError(program, `--${name} must be an integer >= ${min}, got '${text}'`);
  return n;
}

/** The finite number given for --`name` (at least `min`), or `fallback` when the flag is absent. */
export function numberFlag(program: string, name: string, text: string | undefined, fallback: number, min = 0): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isFinite(n) || n < min) usageError(program, `--${name} must be a number >= ${min}, got '${text}'`);
  return n;
}
