/**
 * The cross-entry rules of a fan-out topic's `channels` (README, Fan-out): each entry is checked
 * by its own channel's schema in schema.ts; what no single entry can see is checked here.
 */
import type * as z from "zod";

/** The part of an entry these checks read: it may be malformed (the checks run even then). */
type Entry = { channel?: unknown; name?: unknown };

/**
 * Names (defaulting to the channel kind) are unique within the topic, since each channel's
 * delivery, retries and dead letters are tracked by name; and a topic has at most one `sse`
 * channel, since its pushes are kept in the topic's own stream.
 */
export function checkFanoutChannels(list: readonly unknown[], ctx: z.RefinementCtx): void {
  const names = new Map<unknown, number>();
  let sse: number | undefined;
  list.forEach((e, i) => {
    if (typeof e !== "object" || e === null) return;
    const { channel, name } = e as Entry;
    const named = name ?? channel;
    const first = names.get(named);
    if (typeof named === "string" && first !== undefined) {
      // Names are filled in by now: one equal to the kind was most likely left out.
      const how = named === channel ? `: a channel is named by its kind unless it has a "name"; give each ${String(channel)} channel of the topic its own` : "";
      ctx.addIssue({ code: "custom", path: [i, "name"], message: `duplicate channel name "${named}" (also channels[${first}])${how}` });
    } else names.set(named, i);
    if (channel !== "sse") return;
    if (sse !== undefined) {
      const message = `a topic has at most one sse channel (also channels[${sse}]): its pushes are kept in the topic's own stream`;
      ctx.addIssue({ code: "custom", path: [i, "channel"], message });
    } else sse = i;
  });
}

/** `retry.abortOn` lists HTTP statuses: a fan-out topic needs a webhook channel for it to mean anything. */
export function checkFanoutAbortOn(topic: { channels?: unknown; retry?: unknown }, ctx: z.RefinementCtx): void {
  const retry = topic.retry as { abortOn?: unknown } | undefined;
  if (retry?.abortOn === undefined || !Array.isArray(topic.channels)) return;
  if (topic.channels.some((c) => (c as Entry | null)?.channel === "webhook")) return;
  ctx.addIssue({
    code: "custom",
    path: ["retry", "abortOn"],
    message: "applies to webhook channels only (the statuses of the webhook's HTTP answer); this topic has no webhook channel",
  });
}
