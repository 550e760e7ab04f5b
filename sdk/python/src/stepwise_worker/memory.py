"""An in-memory broker implementing the worker's Transport, for tests.

It keeps topics as lists of records per partition and each group's
committed offsets. A group has one member at a time: a consumer that
subscribes takes every partition of its topic from the previous member
(which sees them revoked on its next consume). Deliveries are reported on
the producer's next poll or flush, as librdkafka does.

Use it to test handlers and the worker together without Kafka::

    broker = MemoryBroker()
    broker.create_topic("stepwise.tasks.ocr", partitions=1)
    broker.create_topic("stepwise.results", partitions=4)
    worker = Worker(transport=broker)
"""

from __future__ import annotations

import time

import threading
from dataclasses import dataclass
from typing import Any, Sequence

from .protocol import Record, ResultRecord
from .transport import UNKNOWN_PARTITION, Consumer, DeliveryCallback, DeliveryError, PartitionsCallback, Producer


@dataclass(frozen=True)
class Stored:
    """A record as the broker keeps it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    timestamp: float = 0.0  # when it was appended, seconds since the epoch

    def header(self, name: str) -> str | None:
        for n, v in self.headers:
            if n == name:
                return v.decode()
        return None


class MemoryBroker:
    """Topics, committed offsets and group membership, all guarded by one
    lock."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.topics: dict[str, list[list[Stored]]] = {}
        self.committed: dict[tuple[str, str, int], int] = {}
        self.members: dict[str, _MemoryConsumer] = {}

    # Administration and inspection.

    def create_topic(self, name: str, partitions: int = 1) -> None:
        with self.lock:
            self.topics.setdefault(name, [[] for _ in range(partitions)])

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> Stored:
        """Writes a record; raises KeyError for an unknown topic or
        partition."""
        with self.lock:
            parts = self.topics[topic]
            if not 0 <= partition < len(parts):
                raise KeyError(f"{topic} has no partition {partition}")
            s = Stored(topic, partition, len(parts[partition]), key, value, list(headers), time.time())
            parts[partition].append(s)
            self.lock.notify_all()
            return s

    def records(self, topic: str, partition: int | None = None) -> list[Stored]:
        with self.lock:
            parts = self.topics.get(topic, [])
            if partition is not None:
                return list(parts[partition]) if partition < len(parts) else []
            return [r for p in parts for r in p]

    def committed_offset(self, group: str, topic: str, partition: int) -> int | None:
        with self.lock:
            return self.committed.get((group, topic, partition))

    def wait(self, predicate: Any, timeout: float) -> bool:
        """Waits until predicate() holds (checked whenever a record is
        written or an offset committed)."""
        with self.lock:
            return bool(self.lock.wait_for(predicate, timeout))

    # Transport.

    def consumer(self, group: str, topic: str) -> Consumer:
        return _MemoryConsumer(self, group, topic)

    def producer(self) -> Producer:
        return _MemoryProducer(self)


class _MemoryConsumer:
    def __init__(self, broker: MemoryBroker, group: str, topic: str) -> None:
        self.b = broker
        self.group = group
        self.topic = topic
        self.callbacks: tuple[PartitionsCallback, PartitionsCallback, PartitionsCallback] | None = None
        self.assigned: list[int] = []
        self.positions: dict[int, int] = {}
        self.paused: set[int] = set()
        self.joined = False
        self.evicted = False
        self.closed = False

    def subscribe(self, on_assign: PartitionsCallback, on_revoke: PartitionsCallback, on_lost: PartitionsCallback) -> None:
        self.callbacks = (on_assign, on_revoke, on_lost)

    def _rebalance(self) -> None:
        assert self.callbacks is not None
        on_assign, on_revoke, _ = self.callbacks
        if self.evicted and self.assigned:
            revoked, self.assigned = self.assigned, []
            on_revoke(revoked)
            return
        if self.joined:
            return
        with self.b.lock:
            old = self.b.members.get(self.group)
            if old is not None and old is not self:
                old.evicted = True
            self.b.members[self.group] = self
            n = len(self.b.topics.get(self.topic, []))
        self.joined = True
        self.assigned = list(range(n))
        self.paused.clear()
        with self.b.lock:
            for p in self.assigned:
                self.positions[p] = self.b.committed.get((self.group, self.topic, p), 0)
        on_assign(list(self.assigned))

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        if self.closed:
            raise RuntimeError("consumer closed")
        self._rebalance()
        out: list[Record] = []

        def ready() -> bool:
            parts = self.b.topics.get(self.topic, [])
            return any(p not in self.paused and self.positions.get(p, 0) < len(parts[p]) for p in self.assigned) or (self.evicted and bool(self.assigned))

        with self.b.lock:
            self.b.lock.wait_for(ready, timeout)
            parts = self.b.topics.get(self.topic, [])
            for p in self.assigned:
                if p in self.paused:
                    continue
                while len(out) < max_records and self.positions[p] < len(parts[p]):
                    s = parts[p][self.positions[p]]
                    self.positions[p] += 1
                    out.append(Record(s.topic, s.partition, s.offset, s.key, s.value, s.headers, s.timestamp))
        return out

    def pause(self, partitions: list[int]) -> None:
        self.paused.update(partitions)

    def resume(self, partitions: list[int]) -> None:
        self.paused.difference_update(partitions)

    def assignment(self) -> list[int]:
        return list(self.assigned)

    def commit(self, offsets: dict[int, int], asynchronous: bool) -> None:
        with self.b.lock:
            if self.b.members.get(self.group) is not self:
                return  # not a member any more: the commit is refused
            for p, o in offsets.items():
                if p in self.assigned:
                    self.b.committed[(self.group, self.topic, p)] = o
            self.b.lock.notify_all()

    def close(self) -> None:
        if self.closed:
            return
        if self.assigned and self.callbacks is not None and not self.evicted:
            revoked, self.assigned = self.assigned, []
            self.callbacks[1](revoked)
        self.closed = True
        with self.b.lock:
            if self.b.members.get(self.group) is self:
                del self.b.members[self.group]

    def crash(self) -> None:
        """Leaves the group without revocation or commit, as a killed
        process does."""
        self.closed = True
        with self.b.lock:
            if self.b.members.get(self.group) is self:
                del self.b.members[self.group]


class _MemoryProducer:
    def __init__(self, broker: MemoryBroker) -> None:
        self.b = broker
        self.lock = threading.Lock()
        self.pending: list[tuple[DeliveryCallback, DeliveryError | None]] = []

    def produce(self, rec: ResultRecord, on_delivery: DeliveryCallback) -> None:
        err: DeliveryError | None = None
        try:
            self.b.append(rec.topic, rec.partition, rec.key, rec.value, rec.headers)
        except KeyError as exc:
            err = DeliveryError(f"unknown partition: {exc}", UNKNOWN_PARTITION)
        with self.lock:
            self.pending.append((on_delivery, err))

    def poll(self, timeout: float) -> None:
        with self.lock:
            todo, self.pending = self.pending, []
        for cb, err in todo:
            cb(err)
        if not todo and timeout > 0:
            threading.Event().wait(min(timeout, 0.01))

    def flush(self, timeout: float) -> int:
        self.poll(0)
        return 0

    def refresh(self, topic: str) -> None:
        pass  # appends see the topics as they are
