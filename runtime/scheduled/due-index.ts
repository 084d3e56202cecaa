/**
 * The releaser's index of scheduled messages, earliest due first: a binary heap on (due time,
 * stream sequence) beside a map by sequence. Pure and synchronous; removal is lazy (a removed
 * sequence is skipped when it reaches the top).
 */

/** What the releaser knows of one scheduled message. */
export interface DueEntry {
  /** Sequence in the scheduled stream. */
  seq: number;
  id: string;
  topic: string;
  /** ms since the epoch, on the server's clock. */
  dueAt: number;
}

export class DueIndex<E extends DueEntry = DueEntry> {
  private readonly bySeq = new Map<number, E>();
  private readonly heap: E[] = [];

  get size(): number {
    return this.bySeq.size;
  }

  has(seq: number): boolean {
    return this.bySeq.has(seq);
  }

  /** Adds an entry; false (and nothing changes) when its sequence is already indexed. */
  add(e: E): boolean {
    if (this.bySeq.has(e.seq)) return false;
    this.bySeq.set(e.seq, e);
    this.heap.push(e);
    this.up(this.heap.length - 1);
    return true;
  }

  remove(seq: number): void {
    this.bySeq.delete(seq);
  }

  clear(): void {
    this.bySeq.clear();
    this.heap.length = 0;
  }

  /** Due time of the earliest entry; undefined when empty. */
  nextDue(): number | undefined {
    this.dropRemoved();
    return this.heap[0]?.dueAt;
  }

  /** Removes and returns every entry due at or before `now`, earliest first (ties in stream order), at most `max`. */
  takeDue(now: number, max = Infinity): E[] {
    const out: E[] = [];
    while (out.length < max) {
      this.dropRemoved();
      const top = this.heap[0];
      if (top === undefined || top.dueAt > now) break;
      this.pop();
      this.bySeq.delete(top.seq);
      out.push(top);
    }
    return out;
  }

  private dropRemoved(): void {
    while (this.heap.length > 0 && this.bySeq.get(this.heap[0]!.seq) !== this.heap[0]) this.pop();
  }

  private pop(): void {
    const last = this.heap.pop()!;
    if (this.heap.length === 0) return;
    this.heap[0] = last;
    this.down(0);
  }

  private before(a: E, b: E): boolean {
    return a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.seq < b.seq);
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
