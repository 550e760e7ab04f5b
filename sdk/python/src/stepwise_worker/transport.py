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


# What a failed delivery means for the result (worker.py acts on it, the
# rule of schemas/PROTOCOL.md, "Worker obligations").
REFUSED = "refused"  # the broker refused the record itself for good: dropped, logged
UNKNOWN_PARTITION = "unknown_partition"  # the producer does not know the partition yet: refresh, retry a while
STOPPED = "stopped"  # the producer is closing or unusable: the task stays uncommitted
TRANSIENT = "transient"  # anything else: sent again


class DeliveryError(Exception):
    """A result was not written; ``kind`` (REFUSED, UNKNOWN_PARTITION,
    STOPPED or TRANSIENT) says whether sending it again can help."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind

    @property
    def permanent(self) -> bool:
        """The broker refused this record for good: retrying cannot help."""
        return self.kind == REFUSED


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

    def refresh(self, topic: str) -> None:
        """Reads topic's metadata again (it may have gained partitions).
        May block; never called on the polling thread."""
        ...


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


def delivery_error(err: Any) -> DeliveryError:
    """Classifies a librdkafka error of a result's delivery. Only a record
    the broker refuses for what it is (too large, invalid, corrupt, no such
    topic) is REFUSED, the same list as the Go SDK's; a partition the
    client's metadata lacks is UNKNOWN_PARTITION; a producer that is closing,
    timed the record out or hit a fatal error is STOPPED; everything else (a
    policy violation, an authorization failure, a broker that restarted) is
    TRANSIENT and sent again."""
    from confluent_kafka import KafkaError

    def codes(*names: str) -> set[int]:
        return {getattr(KafkaError, n) for n in names if hasattr(KafkaError, n)}

    code = err.code()
    if err.fatal() or code in codes("_DESTROY", "_PURGE_QUEUE", "_PURGE_INFLIGHT", "_MSG_TIMED_OUT", "_FATAL", "_FENCED"):
        kind = STOPPED
    elif code in codes("MSG_SIZE_TOO_LARGE", "_MSG_SIZE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_RECORD", "INVALID_MSG",
                       "TOPIC_EXCEPTION", "UNKNOWN_TOPIC_OR_PART", "_UNKNOWN_TOPIC"):
        kind = REFUSED
    elif code == KafkaError._UNKNOWN_PARTITION:
        kind = UNKNOWN_PARTITION
    else:
        kind = TRANSIENT
    return DeliveryError(str(err), kind)


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

        def cb(err: Any, _msg: Any) -> None:
            on_delivery(None if err is None else delivery_error(err))

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

    def refresh(self, topic: str) -> None:
        # A metadata request updates the client's cache, and with it the
        # partitions produce() accepts.
        try:
            self.p.list_topics(topic, timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - the retry reports what still fails
            log.info("reading the results topic's metadata failed", extra={LOG_TOPIC: topic, LOG_ERROR: str(exc)})


def _timestamp(m: Any) -> float | None:
    """The record's timestamp in seconds since the epoch, if it has one."""
    kind, ms = m.timestamp()
    return ms / 1000 if kind != 0 and ms > 0 else None
