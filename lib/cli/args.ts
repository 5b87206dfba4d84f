// Command-line parsing shared by the commands: node's parseArgs, numbers checked by name.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A user error on the command line: printed without a stack trace, exit status 2. */
export class UsageError extends Error {}

export function parse(command: string, argv: string[], options: NonNullable<ParseArgsConfig['options']>) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values;
  } catch (error) {
    throw new UsageError(`lmkernels ${command}: ${(error as Error).message}`);
  }
}

/** The number given for --flag, or the fallback when it was not given. */
export function numberFlag(command: string, flag: string, value: unknown, fallback: number): number;
export function numberFlag(command: string, flag: string, value: unknown, fallback?: number): number | undefined;
export function numberFlag(command: string, flag: string, value: unknown, fallback?: number): number | undefined {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || value.trim() === '' || !Number.isFinite(n)) {
    throw new UsageError(`lmkernels ${command}: --${flag} must be a number, got '${String(value)}'`);
  }
  return n;
}

export function requiredFlag(command: string, flag: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new UsageError(`lmkernels ${command}: --${flag} is required`);
  return value;
}
