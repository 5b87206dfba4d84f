// `optim`: optimisers and schedules.
export { AdamW } from './adamw';
export { ZeroAdamW } from './zero-adamw';
export { cosineSchedule } from './schedule';
export type { AdamWOptions } from './adamw';
