/**
 * The operator's API of a node's HTTP port (runtime/node/http-server.ts): dead letters listed,
 * replayed and purged, rules read and changed, retrieval paused and resumed — the same functions
 * and the same refusals as `herald dlq`, `herald rules`, `herald pause`, `herald resume` and
 * `herald scheduled`.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { HeraldConfig } from "../config/index.js";
import { HeraldError } from "../errors.js";
import { names } from "../names.js";
import { openClusterBucket } from "../nats/buckets.js";
import { deleteLetter, letterRow, letterScope, purgeLetters, readLetters, replayLetter, type StoredLetter } from "../pipeline/dead-letters.js";
import { getRecipient, issueToken, parseRecipient, putRecipient, removeRecipient, revokeTokens, shownRecipient } from "../pipeline/recipients.js";
import { cancelScheduled, listScheduled, scheduledRow, ServerClock } from "../scheduled/index.js";
import { currentRule, pauseInForce, pausesLeft, setPaused, writeRules } from "../rules/store.js";
import type { AdminApi, LetterSelection } from "./http-server.js";

export class NodeAdmin implements AdminApi {
  constructor(
    private readonly connection: () => NatsConnection | undefined,
    private readonly config: HeraldConfig,
  ) {}

  async deadLetters(q: { topic?: string; reason?: string; id?: string; limit: number }): Promise<{ total: number; letters: unknown[] }> {
    const { letters, total } = await this.#read(q.topic, q.reason === undefined && q.id === undefined ? q.limit : Infinity);
    const matching = letters.filter((l) => (q.reason === undefined || l.letter?.reason === q.reason) && (q.id === undefined || l.id.includes(q.id)));
    const filtered = q.reason !== undefined || q.id !== undefined;
    return { total: filtered ? matching.length : total, letters: matching.slice(0, q.limit).map(letterRow) };
  }

  async replay(sel: LetterSelection): Promise<{ replayed: string[]; refused: { id: string; error: string }[] }> {
    const nc = this.#nc();
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const n = names(this.config.subjectPrefix);
    const replayed: string[] = [];
    const refused: { id: string; error: string }[] = [];
    for (const l of await this.#select(sel)) {
      const why = await replayLetter(js, jsm, n, l, this.config.limits);
      if (why) refused.push({ id: l.id, error: why.refused });
      else replayed.push(l.id);
    }
    return { replayed, refused };
  }

  async purge(sel: LetterSelection): Promise<{ purged: number }> {
    const jsm = await jetstreamManager(this.#nc());
    const n = names(this.config.subjectPrefix);
    if ("all" in sel && sel.reason === undefined) return { purged: await purgeLetters(jsm, n, letterScope(this.config, n, this.#topic(sel.topic)), this.config.limits) };
    let purged = 0;
    for (const l of await this.#select(sel)) {
      await deleteLetter(jsm, n, l);
      purged++;
    }
    return { purged };
  }

  async rules(topic: string | undefined): Promise<{ rule: Record<string, unknown>; from: string; paused: { scope: string; at?: string } | null }> {
    const kv = await this.#rulesBucket();
    const t = this.#topic(topic);
    const current = await currentRule(kv, this.config, t);
    return { rule: current.value, from: current.from, paused: (await pauseInForce(kv, t)) ?? null };
  }

  async setRules(topic: string | undefined, patch: Record<string, unknown>): Promise<{ rule: Record<string, unknown> }> {
    const kv = await this.#rulesBucket();
    return { rule: { ...(await writeRules(kv, this.config, this.#topic(topic), patch)) } };
  }

  async setPaused(topic: string | undefined, paused: boolean): Promise<{ paused: boolean; stillPaused: string[] }> {
    const kv = await this.#rulesBucket();
    const t = this.#topic(topic);
    await setPaused(kv, t, paused);
    return { paused, stillPaused: paused ? [] : await pausesLeft(kv, t, Object.keys(this.config.topics)) };
  }

  async recipient(id: string): Promise<Record<string, unknown>> {
    const r = await getRecipient(await this.#recipientsBucket(), id);
    if (r === undefined) throw new HeraldError("UNKNOWN_ID", `no recipient ${JSON.stringify(id)} in the registry`);
    return { id, ...shownRecipient(r) };
  }

  async setRecipient(id: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const kv = await this.#recipientsBucket();
    await putRecipient(kv, id, parseRecipient(body));
    return { id, ...shownRecipient((await getRecipient(kv, id)) ?? {}) };
  }

  async issueToken(id: string): Promise<{ token: string }> {
    return { token: await issueToken(await this.#recipientsBucket(), id) };
  }

  async revokeTokens(id: string): Promise<{ revoked: number }> {
    return { revoked: await revokeTokens(await this.#recipientsBucket(), id) };
  }

  async removeRecipient(id: string): Promise<{ removed: true }> {
    if (!(await removeRecipient(await this.#recipientsBucket(), id))) throw new HeraldError("UNKNOWN_ID", `no recipient ${JSON.stringify(id)} in the registry`);
    return { removed: true };
  }

  async scheduled(q: { topic?: string; limit: number }): Promise<{ total: number; scheduled: unknown[] }> {
    const all = await listScheduled(this.#nc(), this.config, this.#topic(q.topic));
    return { total: all.length, scheduled: all.slice(0, q.limit).map(scheduledRow) };
  }

  async cancelScheduled(id: string, topic: string | undefined): Promise<{ cancelled: unknown }> {
    const nc = this.#nc();
    // A fresh estimate of the server's clock for each cancel: a few probes, a few ms.
    const clock = ServerClock.overNats(nc, this.config.subjectPrefix, `http-${process.pid}`);
    return cancelScheduled(nc, this.config, clock, id, this.#topic(topic));
  }

  #recipientsBucket() {
    return openClusterBucket(this.#nc(), names(this.config.subjectPrefix).recipientsBucket, "recipients");
  }

  /** The letters a selection names; every id must name one (nothing is done otherwise). */
  async #select(sel: LetterSelection): Promise<StoredLetter[]> {
    if ("all" in sel) {
      const { letters } = await this.#read(sel.topic, Infinity);
      return letters.filter((l) => sel.reason === undefined || l.letter?.reason === sel.reason);
    }
    const { letters } = await this.#read(undefined, Infinity);
    const unknown = sel.ids.filter((id) => !letters.some((l) => l.id === id));
    if (unknown.length > 0) throw new HeraldError("UNKNOWN_ID", `no dead letter with id ${unknown.join(", ")}; nothing was done`);
    const wanted = new Set(sel.ids);
    return letters.filter((l) => wanted.has(l.id));
  }

  async #read(topic: string | undefined, limit: number) {
    const jsm = await jetstreamManager(this.#nc());
    const n = names(this.config.subjectPrefix);
    return readLetters(jsm, n, letterScope(this.config, n, topic), limit, this.config.limits);
  }

  #rulesBucket() {
    return openClusterBucket(this.#nc(), names(this.config.subjectPrefix).rulesBucket, "rules");
  }

  /** A topic of the config, or a 404 naming the ones there are. */
  #topic(topic: string | undefined): string | undefined {
    if (topic === undefined || Object.hasOwn(this.config.topics, topic)) return topic;
    const known = Object.keys(this.config.topics);
    throw new HeraldError("UNKNOWN_TOPIC", `no topic named ${JSON.stringify(topic)} in the config (${known.length === 0 ? "none are configured" : `topics: ${known.join(", ")}`})`);
  }

  #nc(): NatsConnection {
    const nc = this.connection();
    if (!nc) throw new HeraldError("NATS", "the node is not connected to NATS yet");
    return nc;
  }
}
