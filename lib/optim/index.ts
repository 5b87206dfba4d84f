// `optim`: optimisers and schedules.
export { AdamW, cosineSchedule } from './adamw';
export type { AdamWOptions } from './adamw';
