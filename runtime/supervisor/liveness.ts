/**
 * Judges other nodes alive or dead from their heartbeat records (pure; the clock is injected).
 *
 * A node is alive while its `readMark` keeps advancing. The judgement uses only the observer's
 * own monotonic clock — when did *I* last see the mark move — so clock skew between hosts
 * cannot make a live node look dead or a dead one alive.
 */
export type NodeState = "alive" | "dead" | "stopped";

/** The fields of a registry record liveness needs. */
export interface Beat {
  /** Incarnation id: a restarted node is a new incarnation even if its readMark starts over. */
  id: string;
  readMark: number;
  state: "alive" | "stopping" | "stopped";
}

interface Seen {
  id: string;
  readMark: number;
  state: Beat["state"];
  /** Observer's monotonic time when the mark last advanced (or was first seen). */
  advancedAt: number;
}

export interface Judgement {
  state: NodeState;
  /** Observer-clock ms since the mark last advanced. */
  heartbeatAgeMs: number;
  readMark: number;
}

export class LivenessJudge {
  private readonly seen = new Map<string, Seen>();

  constructor(private readonly timeoutMs: number) {}

  /** Feeds one observed record. */
  observe(node: string, beat: Beat, nowMs: number): void {
    const prev = this.seen.get(node);
    const advanced = !prev || prev.id !== beat.id || beat.readMark > prev.readMark;
    this.seen.set(node, {
      id: beat.id,
      readMark: beat.readMark,
      state: beat.state,
      advancedAt: advanced ? nowMs : prev.advancedAt,
    });
  }

  /** The record was deleted (node removed from the registry). */
  forget(node: string): void {
    this.seen.delete(node);
  }

  judge(node: string, nowMs: number): Judgement | undefined {
    const s = this.seen.get(node);
    if (!s) return undefined;
    const age = Math.max(0, Math.round(nowMs - s.advancedAt));
    let state: NodeState = age > this.timeoutMs ? "dead" : "alive";
    if (s.state === "stopped") state = "stopped";
    return { state, heartbeatAgeMs: age, readMark: s.readMark };
  }

  nodes(): string[] {
    return [...this.seen.keys()];
  }
}
