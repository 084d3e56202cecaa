/**
 * A KV watch that survives broker restarts. The client's watcher can end or go quiet across a
 * reconnect, so it is recreated whenever it ends and after every reconnect; entries already seen
 * are delivered again, which consumers must treat as idempotent (ours do: latest value wins).
 */
import type { KV, KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { errorText } from "../errors.js";
import type { Logger } from "../log.js";

export interface WatchHandle {
  stop(): void;
}

export function watchKv(
  nc: NatsConnection,
  kv: KV,
  key: string,
  onEntry: (e: KvWatchEntry) => void,
  log: Logger,
): WatchHandle {
  let stopped = false;
  let current: { stop(): void } | undefined;

  const run = async () => {
    while (!stopped && !nc.isClosed()) {
      try {
        const w = await kv.watch({ key });
        current = w;
        if (stopped) w.stop();
        for await (const e of w) onEntry(e);
      } catch (err) {
        if (!stopped) log.debug("kv watch ended", { key, error: errorText(err) });
      }
      current = undefined;
      if (!stopped) await new Promise((r) => setTimeout(r, 250));
    }
  };

  const onStatus = async () => {
    for await (const s of nc.status()) {
      if (stopped) break;
      if (s.type === "reconnect") current?.stop();
    }
  };

  void run();
  void onStatus();
  return {
    stop() {
      stopped = true;
      current?.stop();
    },
  };
}
