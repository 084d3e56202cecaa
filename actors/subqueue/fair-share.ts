/**
 * How a sub-queue actor's in-flight budget (`pipeline.maxInFlight`) is shared among its topics.
 * Once several topics have work, each may hold at most an equal share. A topic alone may use more,
 * but never the last quarter of the budget while other topics exist: a topic whose webhook is slow
 * fills the slots it may take and waits there, and a message of another topic arriving meanwhile
 * still finds a free slot at once instead of waiting for a slow push to finish.
 */

/**
 * In-flight slots one topic may use.
 * @param active topics (it included) that have work: held or in-flight messages.
 * @param topics topics that could have work (configured and not paused).
 */
export function laneShare(maxInFlight: number, active: number, topics: number): number {
  const share = Math.ceil(maxInFlight / Math.max(1, active));
  const reserve = topics > 1 ? Math.max(1, Math.floor(maxInFlight / 4)) : 0;
  return Math.max(1, Math.min(share, maxInFlight - reserve));
}
