/**
 * What a collector source is to the runner: something that, given the cursor of the last
 * checkpoint, returns the next batch of items and the cursor after them. Sources are read-only and
 * stateless between calls apart from connections; the checkpoint holds all progress.
 */
import { HeraldError } from "../../runtime/errors.js";

/** One row or message collected, not yet validated. */
export interface CollectedItem {
  /** Deterministic envelope id (ids.ts): the same item version always gets the same id. */
  id: string;
  /**
   * The submission as `validateSubmission` takes it (`topic`, `to`, `data`); anything else in it is
   * refused by name, and the item becomes a dead letter.
   */
  submission: unknown;
  /** Source time of the item in ms since epoch, when the source has one (lag, id ordering). */
  timeMs?: number;
  /** Source time as the source wrote it (status: newestUpdatedAt). */
  timeText?: string;
}

/** The result of one fetch. */
export interface Batch {
  items: CollectedItem[];
  /**
   * Cursor after these items (JSON; stored in the checkpoint). Equal to the cursor fetched from
   * when nothing new was found.
   */
  cursor: unknown;
  /** More may be waiting right now: the runner fetches again at once. */
  more: boolean;
}

export interface Source {
  readonly kind: "postgres" | "http";
  /** Where a collector without a checkpoint starts (null: from the beginning). */
  initialCursor(): Promise<unknown>;
  /** The items after `cursor` (null: from the beginning), at most `limit` of them. */
  fetch(cursor: unknown, limit: number): Promise<Batch>;
  /** Releases connections; the source is not used afterwards. */
  close(): Promise<void>;
}

/** The source failed (unreachable, misconfigured, bad answer): the collection is retried with backoff. */
export class SourceError extends HeraldError {
  constructor(message: string, options: ErrorOptions = {}) {
    super("SOURCE", message, { ...options, userError: false });
    this.name = "SourceError";
  }
}

/** Text of a thrown value, including what Node hides in `cause` (fetch) and AggregateError (connect). */
export function causeText(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) {
    const first = err.errors[0] as { message?: string; code?: string };
    return first.message || first.code || err.message || "error";
  }
  if (err instanceof Error) {
    const cause = (err as { cause?: unknown }).cause;
    const own = err.message || (err as { code?: string }).code || err.name;
    if (cause !== undefined && (own === "fetch failed" || own === "")) return causeText(cause);
    return own;
  }
  return String(err);
}
