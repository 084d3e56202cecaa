/**
 * The `sse` channel's reading side, on every node's HTTP port: `GET /v1/subscribe/<topic>?to=<id>`
 * streams recipient `id`'s pushes of the topic as server-sent events (`id:` the message id,
 * `data:` the push JSON).
 *
 * A client first gets what the topic's retention stream holds for the recipient after its
 * `Last-Event-ID` (everything kept, on a first connect), then every new push live. The live part is
 * a core NATS subscription to the recipient's subject, one per recipient on this node however many
 * of their clients are connected, opened before the replay so nothing falls between the two; a
 * push seen in both (or stored twice by a retry) is shown once. When this node loses NATS, its
 * streams end, and clients reconnect (to it or another node) and resume from their last id.
 */
import { JetStreamApiCodes, JetStreamApiError, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import { channelsOf, type HeraldConfig } from "../config/index.js";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";
import { names, type Names } from "../names.js";
import { bindBucket } from "../nats/buckets.js";
import { checkRecipientId, getRecipient, tokenHash } from "../pipeline/recipients.js";

/** Where a stream's events go: the HTTP response, as the server wraps it. */
export interface EventSink {
  /** Writes raw event-stream text; false when the client's buffer is full (see {@link MAX_BUFFERED}). */
  write(text: string): boolean;
  /** Bytes written but not yet taken by the client. */
  buffered(): number;
  end(): void;
}

/** What a subscription request carries. */
export interface StreamRequest {
  topic: string;
  to: string | null;
  /** The `Last-Event-ID` header, or the `lastEventId` query parameter (a client moving to another node). */
  lastEventId: string | undefined;
  /** The token presented (bearer header or `access_token`), if any. */
  token: string | undefined;
  /** Whether the token is the node's `http.token`. */
  operator: boolean;
}

export type OpenResult = { ok: true; close(): void } | { ok: false; status: number; error: string };

/** A client that has not taken this many bytes is too slow: its stream ends (it resumes from its last id). */
const MAX_BUFFERED = 4 * 1024 * 1024;
/** Ids a client remembers to drop duplicates (a push both replayed and live, or stored twice). */
const SEEN_IDS = 2048;

interface Client {
  readonly subject: string;
  readonly sink: EventSink;
  /** Ids shown, oldest first (bounded). */
  readonly seen: Set<string>;
  /** Live pushes that came during the replay, shown after it. */
  pending: Msg[] | undefined;
  closed: boolean;
}

/** One recipient's live subscription on this node, shared by their clients. */
interface Feed {
  sub: Subscription;
  clients: Set<Client>;
}

export class SseHub {
  readonly #names: Names;
  readonly #feeds = new Map<string, Feed>();
  #nc: NatsConnection | undefined;
  #jsm: Promise<JetStreamManager> | undefined;
  #recipients: Promise<KV> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #count = 0;
  /** Events written since start (the node's metrics). */
  events = 0;

  constructor(
    private readonly connection: () => NatsConnection | undefined,
    private readonly config: HeraldConfig,
    private readonly log: Logger,
  ) {
    this.#names = names(config.subjectPrefix);
  }

  /** Clients connected to this node now. */
  get clients(): number {
    return this.#count;
  }

  /** Opens a stream for `q` into `sink`: the replay is written before this resolves `ok`. */
  async open(q: StreamRequest, sink: EventSink): Promise<OpenResult> {
    const topic = this.config.topics[q.topic];
    if (!topic || !channelsOf(topic).some((c) => c.channel === "sse")) {
      return { ok: false, status: 404, error: `no sse topic ${JSON.stringify(q.topic.slice(0, 64))} in the cluster config (topics.<name>.channel "sse", or an sse channel in its "channels")` };
    }
    if (q.to === null || q.to === "") return { ok: false, status: 400, error: "give the recipient: /v1/subscribe/<topic>?to=<recipient id>" };
    try {
      checkRecipientId(q.to);
    } catch (err) {
      return { ok: false, status: 400, error: errorText(err) };
    }
    const nc = this.#connection();
    if (!nc) return { ok: false, status: 503, error: "this node is not connected to NATS now: try another node" };
    const denied = await this.#authorize(q);
    if (denied) return denied;
    if (this.#count >= this.config.http.sseMaxClients) {
      return { ok: false, status: 503, error: `this node streams to ${this.#count} clients already (http.sseMaxClients): try another node` };
    }

    const subject = this.#names.sse(q.topic, q.to);
    const client: Client = { subject, sink, seen: new Set(), pending: [], closed: false };
    this.#attach(nc, client);
    try {
      await this.#replay(nc, this.#names.sseStream(q.topic), client, q.lastEventId);
    } catch (err) {
      this.#detach(client);
      return { ok: false, status: 503, error: `cannot read the retained pushes of ${q.topic} now: ${errorText(err)}` };
    }
    const live = client.pending ?? [];
    client.pending = undefined;
    for (const m of live) this.#show(client, m);
    this.#heartbeats();
    return { ok: true, close: () => this.#detach(client) };
  }

  /** Ends every stream (clients reconnect and resume). */
  close(): void {
    for (const feed of this.#feeds.values()) for (const c of feed.clients) this.#end(c);
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Access: the operator's token; or one the recipient was issued; or none when neither is set up. */
  async #authorize(q: StreamRequest): Promise<OpenResult | undefined> {
    if (q.operator) return undefined;
    let tokens: string[] = [];
    try {
      tokens = (await getRecipient(await this.#registry(), q.to!))?.tokens ?? [];
    } catch (err) {
      return { ok: false, status: 503, error: `cannot read recipient ${q.to} from the recipients registry now: ${errorText(err)}` };
    }
    if (q.token !== undefined && tokens.includes(tokenHash(q.token))) return undefined;
    if (this.config.http.token === undefined && tokens.length === 0) return undefined;
    return {
      ok: false,
      status: 401,
      error: `missing or wrong token for recipient ${q.to}'s streams: send Authorization: Bearer <token> or ?access_token=<token> (http.token, or one issued by herald recipients token ${q.to})`,
    };
  }

  /** The node's connection; a new one (after the supervisor reconnected from scratch) ends the old streams. */
  #connection(): NatsConnection | undefined {
    const nc = this.connection();
    if (nc !== this.#nc) {
      this.close();
      this.#feeds.clear();
      this.#nc = nc;
      this.#jsm = undefined;
      this.#recipients = undefined;
      if (nc) void this.#watch(nc);
    }
    return nc;
  }

  /** Ends the streams when the connection drops: pushes published meanwhile would be missed live. */
  async #watch(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" && this.#count > 0) {
        this.log.warn("NATS connection lost: ending the sse streams (clients resume from their last event)", { clients: this.#count });
        this.close();
      }
    }
  }

  #registry(): Promise<KV> {
    return (this.#recipients ??= bindBucket(this.#nc!, this.#names.recipientsBucket).catch((err) => ((this.#recipients = undefined), Promise.reject(err))));
  }

  #attach(nc: NatsConnection, client: Client): void {
    let feed = this.#feeds.get(client.subject);
    if (!feed) {
      const clients = new Set<Client>();
      const sub = nc.subscribe(client.subject, {
        callback: (err, m) => {
          if (err) return;
          for (const c of clients) {
            if (c.pending) c.pending.push(m);
            else this.#show(c, m);
          }
        },
      });
      feed = { sub, clients };
      this.#feeds.set(client.subject, feed);
    }
    feed.clients.add(client);
    this.#count++;
  }

  #detach(client: Client): void {
    const feed = this.#feeds.get(client.subject);
    if (!feed?.clients.delete(client)) return;
    this.#count--;
    client.closed = true;
    if (feed.clients.size === 0) {
      feed.sub.unsubscribe();
      this.#feeds.delete(client.subject);
    }
    if (this.#count === 0 && this.#timer) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  #end(client: Client): void {
    this.#detach(client);
    client.sink.end();
  }

  /**
   * Writes the recipient's retained pushes after `lastEventId` (all of them if it is absent or no
   * longer kept), read in stream order with direct gets on their subject: no consumer to make.
   */
  async #replay(nc: NatsConnection, stream: string, client: Client, lastEventId: string | undefined): Promise<void> {
    const jsm = await (this.#jsm ??= jetstreamManager(nc).catch((err) => ((this.#jsm = undefined), Promise.reject(err))));
    const kept: { id: string; data: Uint8Array }[] = [];
    for (let seq = 0; !client.closed; ) {
      let m;
      try {
        m = await jsm.streams.getMessage(stream, { next_by_subj: client.subject, seq } as never);
      } catch (err) {
        if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.NoMessageFound) break;
        throw err;
      }
      if (!m) break;
      kept.push({ id: m.header?.get("Nats-Msg-Id") || String(m.seq), data: m.data });
      seq = m.seq + 1;
    }
    // The stream starts here, once what it replays could be read (before, a refusal is still possible).
    client.sink.write("retry: 2000\n: connected\n\n");
    const after = lastEventId === undefined ? -1 : kept.findIndex((k) => k.id === lastEventId);
    for (const k of kept.slice(after + 1)) this.#write(client, k.id, k.data);
    // The ids up to the last one the client has are seen too: a live copy of one is not shown again.
    for (const k of kept.slice(0, after + 1)) remember(client.seen, k.id);
  }

  #show(client: Client, m: Msg): void {
    this.#write(client, m.headers?.get("Nats-Msg-Id") || "", m.data);
  }

  #write(client: Client, id: string, data: Uint8Array): void {
    if (client.closed || (id !== "" && client.seen.has(id))) return;
    if (id !== "") remember(client.seen, id);
    if (client.sink.buffered() > MAX_BUFFERED) {
      this.log.warn("an sse client is not reading: ending its stream (it resumes from its last event)", { subject: client.subject });
      this.#end(client);
      return;
    }
    // The push JSON holds no raw newline (JSON escapes them), so one data: line carries it.
    client.sink.write(`id: ${id}\ndata: ${Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString("utf8")}\n\n`);
    this.events++;
  }

  /** A comment line on every stream every `http.sseHeartbeatMs`, so proxies keep idle streams open. */
  #heartbeats(): void {
    this.#timer ??= setInterval(() => {
      for (const feed of this.#feeds.values()) for (const c of feed.clients) if (!c.pending) c.sink.write(": heartbeat\n\n");
    }, this.config.http.sseHeartbeatMs);
    this.#timer.unref?.();
  }
}

function remember(seen: Set<string>, id: string): void {
  seen.add(id);
  if (seen.size > SEEN_IDS) seen.delete(seen.values().next().value!);
}
