// `optim`: optimisers and schedules.
export { AdamW } from './adamw';
export { cosineSchedule } from './schedule';
export type { AdamWOptions } from './adamw';
