/**
 * Binding to a KV bucket that another process creates (the nodes create every Herald bucket;
 * the CLI, status readers and actors bind to them).
 *
 * Reads go by direct get. nats-server 2.9.10 registers a new stream before its store exists, and
 * a `$JS.API.STREAM.MSG.GET` that lands in that window dereferences the missing store and kills
 * the server (seen when `herald status` polled a cluster starting on a fresh server; see
 * test/buckets.test.ts). A direct get is answered by a subscription the stream makes only once its
 * store is ready, so it cannot land in the window. Every Herald bucket is created with
 * `allow_direct` (the client's default on nats-server 2.9 and later).
 *
 * A direct get on a stream that does not exist is not refused, it goes unanswered until the
 * request times out; so the bucket is looked up first (stream info, which that server answers
 * safely at any moment) and a missing one fails at once.
 *
 * @throws the client's JetStreamApiError (code StreamNotFound) when there is no such bucket.
 */
import { jetstream, JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { Kvm, type KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { errorText, HeraldError } from "../errors.js";

export interface BindBucketOptions {
  /**
   * Timeout of every request made through the handle (the lookup included), in ms. A KV handle
   * takes it from its JetStream context, so a handle with its own timeout needs its own context.
   * @defaultValue the client's JetStream default, 5000
   */
  timeoutMs?: number;
  /**
   * Read from the bucket's stream leader instead of by direct get. On a replicated bucket a direct
   * get may be answered by a follower that is behind (after leader changes on nats-server 2.9.10,
   * for tens of seconds), so a value read for a compare-and-set must come from the leader, which
   * is where the write is judged. Only once the bucket has taken a write (see above: the store
   * exists by then). @defaultValue false
   */
  leaderReads?: boolean;
}

export async function bindBucket(nc: NatsConnection, bucket: string, opts: BindBucketOptions = {}): Promise<KV> {
  const kvm = new Kvm(opts.timeoutMs === undefined ? nc : jetstream(nc, { timeout: opts.timeoutMs }));
  const { streamInfo } = await (await kvm.open(bucket)).status();
  // A bucket some other tool made without direct gets is read the ordinary way.
  return kvm.open(bucket, { allow_direct: streamInfo.config.allow_direct === true && opts.leaderReads !== true });
}

/**
 * Binds a bucket the nodes create (`what` names it: "rules", "registry"); a missing one means the
 * cluster has never been started on this NATS, and is said so in one line.
 */
export async function openClusterBucket(nc: NatsConnection, bucket: string, what: string): Promise<KV> {
  try {
    return await bindBucket(nc, bucket);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) {
      throw new HeraldError("NO_CLUSTER", `no ${what} bucket ${bucket} on this NATS: has the cluster been started? (herald start)`);
    }
    throw new HeraldError("NATS", `cannot open the ${what} bucket ${bucket}: ${errorText(err)}`);
  }
}
