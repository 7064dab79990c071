export * from './codec.ts';
export * from './errors.ts';
export * from './event-id.ts';
export * from './messages.ts';
export * from './topics.ts';
