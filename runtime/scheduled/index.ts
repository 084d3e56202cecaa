/**
 * Scheduled delivery: messages with `deliverAt` or `delayMs` wait in the scheduled stream until
 * due on the JetStream server's clock, and the master's releaser then puts them on the queue
 * (README, Scheduled delivery). The fields themselves are checked in pipeline/schedule.ts.
 */
export { Releaser } from "./releaser.js";
export { ServerClock, bestEstimate, natsProbe, timestampMs } from "./server-clock.js";
export { ScheduledWriter, readScheduled, releasedEnvelope } from "./store.js";
export { DueIndex } from "./due-index.js";
export { CANCEL_CUTOFF_MS, cancelScheduled, listScheduled, scheduledRow } from "./admin.js";

export type { ReleaserOptions } from "./releaser.js";
export type { ClockEstimate, ClockSample, ServerClockOptions } from "./server-clock.js";
export type { ReadScheduled, ReleasedMark, ScheduledMessage, StoredRecord } from "./store.js";
export type { DueEntry } from "./due-index.js";
export type { CancelOutcome, ScheduledRow } from "./admin.js";
