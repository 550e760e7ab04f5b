// A counting semaphore whose waits can be given up.

/** Semaphore bounds how many tasks of a queue run at once. */
export class Semaphore {
  #free: number;
  #waiters: Array<() => void> = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`semaphore size must be a positive integer, got ${size}`);
    this.#free = size;
  }

  /** Slots in use. */
  get inUse(): number {
    return this.size - this.#free;
  }

  /**
   * Takes a slot, waiting for one if none is free. It resolves false, taking
   * nothing, when signal aborts first.
   */
  acquire(signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const grant = () => {
        signal?.removeEventListener("abort", giveUp);
        resolve(true);
      };
      const giveUp = () => {
        const i = this.#waiters.indexOf(grant);
        if (i >= 0) this.#waiters.splice(i, 1);
        resolve(false);
      };
      this.#waiters.push(grant);
      signal?.addEventListener("abort", giveUp, { once: true });
    });
  }

  /** Gives a slot back, to the longest waiter if there is one. */
  release(): void {
    const next = this.#waiters.shift();
    if (next !== undefined) next();
    else if (this.#free < this.size) this.#free++;
    else throw new Error("semaphore released more often than acquired");
  }
}
