"""Offset tracking for one queue: how far each partition may be committed.

Invariant: for every tracked partition, the mark (the offset to commit) is
one past a task whose result was acknowledged, and every task of that
partition polled before it is finished too. Tasks finish out of order; the
mark only moves over a contiguous run of finished tasks, so a commit never
passes a task that is still running or waiting to run.

Not thread-safe: one queue's consumer thread owns its tracker; handler
threads report back to that thread through a queue.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


@dataclass
class Partition:
    number: int
    pending: deque[Entry] = field(default_factory=deque)  # polled, not passed by the mark; in offset order
    running: int = 0  # started, not yet released
    closed: bool = False  # being revoked, or gone: start no more of its tasks
    gone: bool = False  # no longer owned: its marks must not be committed
    next: int = -1  # one past the last offset added; a re-fetch below it is ignored


@dataclass(eq=False)
class Entry:
    """One polled task."""

    part: Partition
    offset: int
    done: bool = False
    started: bool = False
    key: str = ""  # the task key (protocol.task_key) while its handler runs


class Tracker:
    def __init__(self) -> None:
        self.parts: dict[int, Partition] = {}

    def assign(self, numbers: list[int]) -> None:
        """Starts tracking partitions afresh: one that comes back starts from
        its committed offset again."""
        for n in numbers:
            old = self.parts.get(n)
            if old is not None:
                old.closed = old.gone = True
            self.parts[n] = Partition(n)

    def add(self, partition: int, offset: int) -> Entry | None:
        """Records a polled task, in poll order. None when the partition is
        not tracked: the task is someone else's and must not run here."""
        p = self.parts.get(partition)
        if p is None or p.closed or offset < p.next:
            return None
        p.next = offset + 1
        e = Entry(p, offset)
        p.pending.append(e)
        return e

    def start(self, e: Entry) -> bool:
        """Whether the task may run: False once its partition is closing. A
        True start is followed by exactly one finish (or release)."""
        if e.part.closed:
            return False
        e.part.running += 1
        e.started = True
        return True

    def finish(self, e: Entry) -> int | None:
        """Records that a started task's result was acknowledged (or that it
        had none to give) and releases it. Returns the partition's new mark
        when it moved and the partition is still owned."""
        p = e.part
        e.done = True
        self.release(e)
        mark = None
        while p.pending and p.pending[0].done:
            mark = p.pending.popleft().offset + 1
        if p.gone:
            return None
        return mark

    def release(self, e: Entry) -> None:
        """Ends a started task, finished or not (finish calls it)."""
        if e.started:
            e.started = False
            e.part.running -= 1

    def close(self, numbers: list[int]) -> None:
        """Stops starting tasks of partitions about to be revoked; their
        running tasks may still finish and move the mark."""
        for n in numbers:
            p = self.parts.get(n)
            if p is not None:
                p.closed = True

    def running(self, numbers: list[int] | None = None) -> int:
        """Started, unfinished tasks of the given partitions (all when None)."""
        ps = self.parts.values() if numbers is None else [self.parts[n] for n in numbers if n in self.parts]
        return sum(p.running for p in ps)

    def drop(self, numbers: list[int]) -> None:
        """Stops tracking partitions: this member no longer owns them."""
        for n in numbers:
            p = self.parts.pop(n, None)
            if p is not None:
                p.closed = p.gone = True
