/**
 * The heartbeat registry (the seed's heartbeat thread): each node's record in a KV bucket,
 * rewritten every `heartbeat.intervalMs`. Records are JSON so any NATS tool can read them
 * (`nats kv get herald_registry node.n1`).
 */
import type { KV, KvEntry } from "@nats-io/kv";
import { ensureBucket, type Storage } from "../nats/storage.js";
import { networkInterfaces } from "node:os";
import type { ActorSummary } from "./actor-host.js";

/** A node's registry record: the seed's fields first, then ours. */
export interface RegistryRecord {
  /** This incarnation's ULID (a restarted node gets a new one). */
  id: string;
  /** +1 at every beat; liveness is judged from its progress. */
  readMark: number;
  /** ISO time of the beat (informational: never compared across hosts). */
  dateTime: string;
  mainProcessIp: string;
  /** Set by `herald stop`: the node drains and exits. */
  isStopServer: boolean;
  serverName: string;
  cluster: string;
  role: "master" | "slave";
  /** Lease epoch while master, else null. */
  epoch: number | null;
  pid: number;
  state: "alive" | "stopping" | "stopped";
  startedAt: string;
  actors: ActorSummary[];
}

/** Opens (creating if needed) the registry bucket. History 1: only the latest record matters. */
export async function openRegistry(storage: Storage, bucket: string): Promise<KV> {
  return ensureBucket(storage, bucket, { history: 1 });
}

export function parseRecord(entry: KvEntry): RegistryRecord | undefined {
  if (entry.operation !== "PUT") return undefined;
  try {
    return entry.json<RegistryRecord>();
  } catch {
    return undefined;
  }
}

/** The address other hosts see this process at: first non-internal IPv4, else loopback. */
export function mainProcessIp(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family === "IPv4" && !a.internal) return a.address;
    }
  }
  return "127.0.0.1";
}

/**
 * Writes one node's record. Every write after the first is a compare-and-set on the last
 * revision, so a `herald stop` that sets `isStopServer` in between is never overwritten: the
 * conflict is noticed, the flag read and honoured.
 */
export class HeartbeatWriter {
  private revision: number | undefined;
  private readMark = 0;
  private stopFlag = false;

  /**
   * @param kv the registry bucket, for writes.
   * @param leaderKv the same bucket read from its leader (bindBucket `leaderReads`): after a
   *   refused write the revision is read back from there, since a lagging replica's answer would
   *   be refused again.
   */
  constructor(
    private readonly kv: KV,
    private readonly leaderKv: KV,
    private readonly key: string,
    private readonly onStopRequested: () => void,
  ) {}

  get stopRequested(): boolean {
    return this.stopFlag;
  }

  /** Writes the next beat; returns its readMark. */
  async beat(record: Omit<RegistryRecord, "readMark" | "dateTime" | "isStopServer">): Promise<number> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const next: RegistryRecord = {
        ...record,
        readMark: this.readMark + 1,
        dateTime: new Date().toISOString(),
        isStopServer: this.stopFlag,
      };
      const data = JSON.stringify(next);
      try {
        this.revision =
          this.revision === undefined ? await this.kv.put(this.key, data) : await this.kv.update(this.key, data, this.revision);
        this.readMark = next.readMark;
        return this.readMark;
      } catch (err) {
        if (this.revision === undefined) throw err;
        // Someone else wrote our record (or the write timed out, applied or not): find out what
        // it holds now, and whether it asks us to stop.
        const entry = await this.leaderKv.get(this.key);
        this.revision = entry?.revision;
        const seen = entry ? parseRecord(entry) : undefined;
        if (seen?.isStopServer && !this.stopFlag) {
          this.stopFlag = true;
          this.onStopRequested();
        }
      }
    }
    throw new Error(`could not write registry record ${this.key}: it keeps changing under us`);
  }
}
