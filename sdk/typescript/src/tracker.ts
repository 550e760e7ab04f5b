// How far each partition of a queue may be committed. Pure bookkeeping,
// tested without a broker.

/** One started task of a tracked partition. */
export interface Entry {
  readonly partition: number;
  readonly offset: bigint;
  /** @internal */ readonly state: PartitionState;
  /** @internal */ done: boolean;
}

interface PartitionState {
  /** started, not yet passed by the mark; in offset order */
  pending: Entry[];
  /** revoked or reassigned: its tasks no longer commit */
  closed: boolean;
}

/**
 * OffsetTracker follows the tasks of one queue from their start to their
 * acknowledged result, and says how far each partition may be committed.
 *
 * Invariant: the mark of a partition (the offset to commit) is one past a
 * finished task, and every task of that partition started before it is
 * finished too. Tasks finish out of order; the mark only moves over a
 * contiguous run of finished tasks, so a commit never passes a task still
 * running.
 *
 * Tasks must be added in offset order per partition, which a consumer
 * delivers. A partition is tracked from one assignment to the next: the
 * consumer re-reads every partition from its committed offset after a
 * rebalance, so each assignment starts afresh and tasks started before it
 * no longer move any mark (they run again from the committed offset).
 */
export class OffsetTracker {
  #parts = new Map<number, PartitionState>();

  /** Replaces the tracked partitions with partitions, all starting afresh. */
  assign(partitions: readonly number[]): void {
    for (const p of this.#parts.values()) p.closed = true;
    this.#parts = new Map(partitions.map((n) => [n, { pending: [], closed: false }]));
  }

  /** Stops tracking every partition (the consumer is leaving). */
  revokeAll(): void {
    this.assign([]);
  }

  /** The partitions tracked now. */
  partitions(): number[] {
    return [...this.#parts.keys()].sort((a, b) => a - b);
  }

  /**
   * Records that the task at offset of partition starts. It returns
   * undefined when the partition is not tracked: the task belongs to
   * another member now and must not run here.
   */
  start(partition: number, offset: string | bigint): Entry | undefined {
    const state = this.#parts.get(partition);
    if (state === undefined || state.closed) return undefined;
    const e: Entry = { partition, offset: BigInt(offset), state, done: false };
    state.pending.push(e);
    return e;
  }

  /** Reports whether the entry's partition is still tracked. */
  isCurrent(e: Entry): boolean {
    return !e.state.closed;
  }

  /**
   * Records that the task's result was acknowledged (or that it had none to
   * give). It returns the partition's new mark, in decimal, when the mark
   * moved and the partition is still tracked.
   */
  finish(e: Entry): string | undefined {
    e.done = true;
    const p = e.state;
    let mark: bigint | undefined;
    while (p.pending.length > 0 && p.pending[0]!.done) {
      mark = p.pending.shift()!.offset + 1n;
    }
    return mark === undefined || p.closed ? undefined : mark.toString();
  }
}
