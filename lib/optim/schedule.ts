// Learning-rate schedules: plain functions of the step number.
import { checkOptions } from '../validate';

function finite(value: unknown, arg: string): number {
  if (typeof value !== 'number') throw new TypeError(`cosineSchedule: ${arg} must be a number, got ${typeof value}`);
  if (!Number.isFinite(value)) throw new RangeError(`cosineSchedule: ${arg} must be a finite number, got ${value}`);
  return value;
}

/** Learning rate at `step` (0-based): linear warm-up to maxLr, then cosine decay to minLr at totalSteps. */
export function cosineSchedule(opts: {
  maxLr: number;
  minLr?: number;
  warmupSteps?: number;
  totalSteps: number;
}): (step: number) => number {
  checkOptions(opts, 'cosineSchedule', ['maxLr', 'minLr', 'warmupSteps', 'totalSteps']);
  const maxLr = finite(opts.maxLr, 'maxLr');
  const totalSteps = finite(opts.totalSteps, 'totalSteps');
  const minLr = opts.minLr === undefined ? 0 : finite(opts.minLr, 'minLr');
  const warmup = opts.warmupSteps === undefined ? 0 : finite(opts.warmupSteps, 'warmupSteps');
  return (step: number) => {
    if (step < warmup) return (maxLr * (step + 1)) / warmup;
    const progress = Math.min(1, (step - warmup) / Math.max(1, totalSteps - warmup));
    return minLr + 0.5 * (maxLr - minLr) * (1 + Math.cos(Math.PI * progress));
  };
}
