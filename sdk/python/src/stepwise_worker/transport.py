"""The worker's view of Kafka, and its implementation on confluent-kafka.

The runtime (worker.py) talks to a Transport only, so it runs unchanged on a
real cluster (KafkaTransport) and on the in-memory broker of memory.py that
the tests use. Partitions are plain numbers: each consumer reads one topic.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

from ._log import LOG_ERROR, LOG_TOPIC, log
from .protocol import Record, ResultRecord

PartitionsCallback = Callable[[list[int]], None]


class DeliveryError(Exception):
    """A result was not written. ``permanent``: the broker refused this
    record for good (no such partition, too large), so retrying cannot help;
    otherwise the cluster was unreachable or the producer is closing."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


DeliveryCallback = Callable[[DeliveryError | None], None]


class Consumer(Protocol):
    """A consumer-group member reading one topic, committing explicitly.
    Rebalance callbacks run inside consume() or close(), on the caller's
    thread."""

    def subscribe(self, on_assign: PartitionsCallback, on_revoke: PartitionsCallback, on_lost: PartitionsCallback) -> None: ...

    def consume(self, max_records: int, timeout: float) -> list[Record]: ...

    def pause(self, partitions: list[int]) -> None: ...

    def resume(self, partitions: list[int]) -> None: ...

    def assignment(self) -> list[int]: ...

    def commit(self, offsets: dict[int, int], asynchronous: bool) -> None: ...

    def close(self) -> None: ...


class Producer(Protocol):
    """Produces result records to an explicit partition. Thread-safe.
    Delivery callbacks run inside poll() or flush()."""

    def produce(self, rec: ResultRecord, on_delivery: DeliveryCallback) -> None: ...

    def poll(self, timeout: float) -> None: ...

    def flush(self, timeout: float) -> int: ...


class Transport(Protocol):
    def consumer(self, group: str, topic: str) -> Consumer: ...

    def producer(self) -> Producer: ...


class KafkaTransport:
    """Clients of confluent-kafka (librdkafka) built from one configuration.

    ``config`` is librdkafka configuration shared by both clients (servers,
    security, client id...), ``consumer_config`` and ``producer_config``
    that of one kind of client. The settings the worker's guarantees
    rest on are applied over it and cannot be overridden: read_committed,
    no automatic commits or offset stores, acks from all in-sync replicas.
    """

    def __init__(
        self,
        config: dict[str, Any],
        consumer_config: dict[str, Any] | None = None,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        self.config = dict(config)
        self.consumer_config = dict(consumer_config or {})
        self.producer_config = dict(producer_config or {})

    def consumer(self, group: str, topic: str) -> Consumer:
        return _KafkaConsumer({**self.config, **self.consumer_config}, group, topic)

    def producer(self) -> Producer:
        return _KafkaProducer({**self.config, **self.producer_config})


class _KafkaConsumer:
    def __init__(self, base: dict[str, Any], group: str, topic: str) -> None:
        from confluent_kafka import Consumer as CKConsumer

        conf = {
            # A new group starts with the oldest task: tasks dispatched
            # before the first worker of a queue started are waiting for it.
            "auto.offset.reset": "earliest",
            **base,
            "group.id": group,
            # Tasks are written in processor transactions: an aborted one
            # must never run.
            "isolation.level": "read_committed",
            # Commit only what the tracker marks, after the result is acked.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
        }
        self.topic = topic
        self.c = CKConsumer(conf)

    def subscribe(self, on_assign: PartitionsCallback, on_revoke: PartitionsCallback, on_lost: PartitionsCallback) -> None:
        topic = self.topic

        def nums(parts: list[Any]) -> list[int]:
            return [p.partition for p in parts if p.topic == topic]

        self.c.subscribe(
            [topic],
            on_assign=lambda _c, parts: on_assign(nums(parts)),
            on_revoke=lambda _c, parts: on_revoke(nums(parts)),
            on_lost=lambda _c, parts: on_lost(nums(parts)),
        )

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        out: list[Record] = []
        for m in self.c.consume(num_messages=max_records, timeout=timeout):
            if m.error() is not None:
                # Partition EOF is off; what is left are transient fetch
                # errors librdkafka reports and retries by itself.
                log.warning("fetch error", extra={LOG_TOPIC: self.topic, LOG_ERROR: str(m.error())})
                continue
            raw = m.headers() or []
            pairs = raw.items() if isinstance(raw, dict) else raw
            headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]
            out.append(
                Record(
                    topic=m.topic() or self.topic,
                    partition=m.partition() or 0,
                    offset=m.offset() or 0,
                    key=m.key(),
                    value=m.value(),
                    headers=headers,
                    timestamp=_timestamp(m),
                )
            )
        return out

    def _tps(self, partitions: list[int], offsets: dict[int, int] | None = None) -> list[Any]:
        from confluent_kafka import TopicPartition

        if offsets is not None:
            return [TopicPartition(self.topic, p, o) for p, o in offsets.items()]
        return [TopicPartition(self.topic, p) for p in partitions]

    def pause(self, partitions: list[int]) -> None:
        if partitions:
            self.c.pause(self._tps(partitions))

    def resume(self, partitions: list[int]) -> None:
        if partitions:
            self.c.resume(self._tps(partitions))

    def assignment(self) -> list[int]:
        return [p.partition for p in self.c.assignment() if p.topic == self.topic]

    def commit(self, offsets: dict[int, int], asynchronous: bool) -> None:
        if not offsets:
            return
        if asynchronous:
            self.c.commit(offsets=self._tps([], offsets), asynchronous=True)
        else:
            self.c.commit(offsets=self._tps([], offsets), asynchronous=False)

    def close(self) -> None:
        self.c.close()


def _permanent_codes() -> set[int]:
    """Delivery errors after which the same record would fail again the
    same way."""
    from confluent_kafka import KafkaError

    names = [
        "_UNKNOWN_PARTITION",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_TOPIC",
        "MSG_SIZE_TOO_LARGE",
        "_MSG_SIZE_TOO_LARGE",
        "INVALID_RECORD",
        "CORRUPT_MESSAGE",
        "TOPIC_AUTHORIZATION_FAILED",
    ]
    return {getattr(KafkaError, n) for n in names if hasattr(KafkaError, n)}


class _KafkaProducer:
    def __init__(self, base: dict[str, Any]) -> None:
        from confluent_kafka import Producer as CKProducer

        conf = {
            # Results wait for nobody: a step's latency is the workflow's.
            "linger.ms": 1,
            **base,
            "acks": "all",
            "enable.idempotence": True,
        }
        self.p = CKProducer(conf)

    def produce(self, rec: ResultRecord, on_delivery: DeliveryCallback) -> None:
        from confluent_kafka import KafkaException

        permanent = _permanent_codes()

        def cb(err: Any, _msg: Any) -> None:
            if err is None:
                on_delivery(None)
            else:
                on_delivery(DeliveryError(str(err), err.code() in permanent and not err.fatal()))

        while True:
            try:
                # Explicit partition: results go exactly where the task says.
                self.p.produce(
                    rec.topic,
                    value=rec.value,
                    key=rec.key,
                    partition=rec.partition,
                    headers=list[tuple[str, "str | bytes | None"]](rec.headers),
                    on_delivery=cb,
                )
                return
            except KafkaException as exc:
                # Refused before queueing (a partition the topic lacks).
                cb(exc.args[0], None)
                return
            except BufferError:
                # The local queue is full: let deliveries drain, then retry.
                self.p.poll(0.1)

    def poll(self, timeout: float) -> None:
        self.p.poll(timeout)

    def flush(self, timeout: float) -> int:
        return int(self.p.flush(timeout))


def _timestamp(m: Any) -> float | None:
    """The record's timestamp in seconds since the epoch, if it has one."""
    kind, ms = m.timestamp()
    return ms / 1000 if kind != 0 and ms > 0 else None
