/**
 * A lock file naming the processes that hold a resource (a nats-server store dir, the launcher of
 * a config), so that a second one refuses to start instead of sharing it.
 *
 * Invariant: the lock is held while any process it names is alive — the process that took it,
 * then the processes it started for the resource (its nats-server, its nodes). What a SIGKILLed
 * process left running therefore still holds the lock. A lock whose processes are all gone is
 * stale and is taken over silently. A lock taken on another host cannot be judged from here and
 * counts as held.
 *
 * Taking it is atomic: the record is written to a temporary file and hard-linked to the lock's
 * name, which fails when the name exists; of two processes breaking the same stale lock, the one
 * that finds a fresh lock where it expected the stale one puts it back.
 */
import { randomBytes } from "node:crypto";
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { HeraldError } from "../errors.js";
import { isSameProcess, probeProcess } from "./process-info.js";

export interface LockHolder {
  pid: number;
  /** What the process is, for people: "herald launcher", "nats-server", "node n1". */
  role: string;
  /** Its start time (see process-info.ts), so a process that got the pid later is not taken for it. */
  startedAt?: string;
}

export interface LockRecord {
  host: string;
  /** The first is the process that took the lock. */
  holders: LockHolder[];
}

export type LockVerdict =
  /** No lock, an unreadable one, or every process it names is gone. */
  | { state: "free" }
  /** The process that took it is alive (`alive[0]`), with whichever of the others are. */
  | { state: "held"; alive: LockHolder[] }
  /** The process that took it is gone, but some it started still run. */
  | { state: "orphaned"; owner: LockHolder; alive: LockHolder[] }
  /** Taken on another host: its processes cannot be checked from here. */
  | { state: "elsewhere"; host: string; owner: LockHolder };

/** Who holds a lock, judged from its record (pure; `isAlive` asks the OS). */
export function judgeLock(record: LockRecord | undefined, host: string, isAlive: (h: LockHolder) => boolean): LockVerdict {
  const owner = record?.holders[0];
  if (record === undefined || owner === undefined) return { state: "free" };
  if (record.host !== host) return { state: "elsewhere", host: record.host, owner };
  const alive = record.holders.filter(isAlive);
  if (alive.length === 0) return { state: "free" };
  return alive[0] === owner ? { state: "held", alive } : { state: "orphaned", owner, alive };
}

/** The lock is held by live processes; the message names them and says what to do. */
export class LockHeldError extends HeraldError {
  constructor(
    message: string,
    readonly file: string,
    readonly verdict: Exclude<LockVerdict, { state: "free" }>,
  ) {
    super("LOCKED", message);
    this.name = "LockHeldError";
  }

  /** "herald launcher (pid 4200), nats-server (pid 4242)" */
  static names(holders: readonly LockHolder[]): string {
    return holders.map((h) => `${h.role} (pid ${h.pid})`).join(", ");
  }
}

export interface AcquireOptions {
  /** What the lock guards, as the refusal names it: "nats.storeDir /srv/herald/nats". */
  resource: string;
  /** This process, as others are told: "herald launcher". */
  role: string;
  /** The way round a held lock, added to the refusal: "use another store dir". */
  otherwise?: string;
  /**
   * When the process that took the lock is gone but some it started still run (a launcher was
   * SIGKILLed and its nodes drain), wait this long, in ms, for them to end before refusing.
   * @defaultValue 0: refuse at once
   */
  orphanWaitMs?: number;
  /** Called once when such a wait begins, with the processes waited for. */
  onWait?: (alive: readonly LockHolder[]) => void;
}

const ORPHAN_POLL_MS = 100;
const TAKE_ATTEMPTS = 5;

export class PidLock {
  private content: string;
  private isReleased = false;

  private constructor(
    readonly file: string,
    private record: LockRecord,
  ) {
    this.content = serialise(record);
  }

  /**
   * Takes the lock for this process.
   * @throws {LockHeldError} when live processes hold it (after `orphanWaitMs` for orphans).
   */
  static async acquire(file: string, opts: AcquireOptions): Promise<PidLock> {
    const host = hostname();
    const self = describeSelf(opts.role);
    const deadline = Date.now() + (opts.orphanWaitMs ?? 0);
    let waiting = false;
    for (let attempt = 0; ; ) {
      const record: LockRecord = { host, holders: [self] };
      if (tryCreate(file, serialise(record))) return new PidLock(file, record);
      const seen = readLock(file);
      const verdict = judgeLock(seen.record, host, (h) => isSameProcess(h.pid, h.startedAt));
      if (verdict.state === "free") {
        if (++attempt >= TAKE_ATTEMPTS) throw new HeraldError("LOCK", `cannot take the lock ${file}: other processes keep replacing it`);
        breakStale(file, seen.text);
        continue;
      }
      if (verdict.state === "orphaned" && Date.now() < deadline) {
        if (!waiting) opts.onWait?.(verdict.alive);
        waiting = true;
        await new Promise((r) => setTimeout(r, ORPHAN_POLL_MS));
        continue;
      }
      const otherwise = opts.otherwise === undefined ? "" : `, or ${opts.otherwise}`;
      throw new LockHeldError(`${refusal(opts.resource, file, verdict, opts.orphanWaitMs ?? 0)}${otherwise}`, file, verdict);
    }
  }

  /** Names one more process that holds the resource with this one. */
  add(pid: number, role: string): void {
    if (this.isReleased) return;
    const probe = probeProcess(pid);
    const holder: LockHolder = { pid, role, ...(probe.alive && probe.startedAt ? { startedAt: probe.startedAt } : {}) };
    // Processes that ended (a server before its restart) are dropped; the owner stays first.
    const [owner, ...rest] = this.record.holders;
    const kept = rest.filter((h) => h.pid !== pid && isSameProcess(h.pid, h.startedAt));
    this.record = { ...this.record, holders: [owner!, ...kept, holder] };
    const next = serialise(this.record);
    const tmp = tempName(this.file);
    writeFileSync(tmp, next);
    renameSync(tmp, this.file);
    this.content = next;
  }

  get released(): boolean {
    return this.isReleased;
  }

  /** Removes the lock file, if it is still this lock's. Idempotent. */
  release(): void {
    if (this.isReleased) return;
    this.isReleased = true;
    try {
      if (readFileSync(this.file, "utf8") === this.content) unlinkSync(this.file);
    } catch {
      // Already gone.
    }
  }
}

function refusal(resource: string, file: string, verdict: Exclude<LockVerdict, { state: "free" }>, waitedMs: number): string {
  switch (verdict.state) {
    case "held": {
      const [owner, ...rest] = verdict.alive;
      const others = rest.length > 0 ? `, with ${LockHeldError.names(rest)}` : "";
      return `${resource} is in use by ${LockHeldError.names([owner!])}${others}: stop it first (kill ${owner!.pid})`;
    }
    case "orphaned": {
      const waited = waitedMs > 0 ? ` after ${Math.round(waitedMs / 1000)} s` : "";
      const pids = verdict.alive.map((h) => h.pid).join(" ");
      return (
        `${resource} is still in use${waited} by ${LockHeldError.names(verdict.alive)}, ` +
        `left by ${LockHeldError.names([verdict.owner])}, which is gone: stop them (kill ${pids})`
      );
    }
    case "elsewhere":
      return (
        `${resource} is in use by ${LockHeldError.names([verdict.owner])} on host ${verdict.host}: ` +
        `stop it there, or delete ${file} if nothing runs there any more`
      );
  }
}

function describeSelf(role: string): LockHolder {
  const probe = probeProcess(process.pid);
  return { pid: process.pid, role, ...(probe.alive && probe.startedAt ? { startedAt: probe.startedAt } : {}) };
}

function serialise(record: LockRecord): string {
  return `${JSON.stringify(record)}\n`;
}

function tempName(file: string): string {
  return `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
}

/** Creates the lock file holding `content`; false when it exists. */
function tryCreate(file: string, content: string): boolean {
  const tmp = tempName(file);
  writeFileSync(tmp, content);
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    // A file system without hard links: exclusive create (a reader may briefly see it empty,
    // which it takes for stale; acceptable there).
    try {
      writeFileSync(file, content, { flag: "wx" });
      return true;
    } catch (err2) {
      if ((err2 as NodeJS.ErrnoException).code === "EEXIST") return false;
      throw err2;
    }
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Nothing to clean.
    }
  }
}

function readLock(file: string): { text: string; record: LockRecord | undefined } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return { text: "", record: undefined };
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockRecord>;
    const valid =
      typeof parsed.host === "string" &&
      Array.isArray(parsed.holders) &&
      parsed.holders.every((h) => typeof h?.pid === "number" && typeof h.role === "string");
    return { text, record: valid ? (parsed as LockRecord) : undefined };
  } catch {
    return { text, record: undefined };
  }
}

/** Moves a stale lock (holding `seen`) out of the way; puts back a fresh one found there instead. */
function breakStale(file: string, seen: string): void {
  const aside = `${file}.stale.${process.pid}.${randomBytes(4).toString("hex")}`;
  try {
    renameSync(file, aside);
  } catch {
    return; // Someone else moved it: look again.
  }
  try {
    if (readFileSync(aside, "utf8") !== seen) linkSync(aside, file);
  } catch {
    // The name was taken again meanwhile: that lock stands, and is judged on the next look.
  } finally {
    try {
      unlinkSync(aside);
    } catch {
      // Nothing to clean.
    }
  }
}
