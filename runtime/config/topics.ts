/**
 * What a topic pushes to: one channel (`channel`) or several (`channels`, README: Fan-out). Code
 * that reads a channel's settings goes through these, so it serves both kinds of topic.
 *
 * Imports types only: actor threads import this file itself rather than the folder's index,
 * which would load zod and the schema into every thread (README, Memory).
 */
import type { FanoutTopicConfig, SingleTopicConfig, TopicConfig } from "./schema.js";

/** Most channels one fan-out topic may list (and an envelope may name). */
export const MAX_FANOUT_CHANNELS = 16;

/** True for a topic that lists several channels in `channels`. */
export function isFanout(t: TopicConfig): t is FanoutTopicConfig {
  return "channels" in t;
}

/**
 * The settings of each channel a topic pushes to: a single-channel topic's own, or each entry of
 * a fan-out topic's `channels` (an entry has the settings of a topic of its channel).
 */
export function channelsOf(t: TopicConfig): readonly SingleTopicConfig[] {
  return isFanout(t) ? t.channels : [t];
}
