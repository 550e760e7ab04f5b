"""The worker runtime: consumer groups, handler threads, results, commits.

Threads and who owns what:

- one consumer thread per queue owns that queue's consumer, offset tracker
  and backlog; rebalance callbacks run on it, inside consume();
- sync handlers run on a fixed set of daemon threads per queue (its
  concurrency); ``async def`` handlers on one event-loop thread shared by
  all queues;
- one thread polls the shared producer, so delivery reports arrive;
- handler threads and delivery reports talk back to the consumer thread
  only through its event queue.

A task's offset is committed only after its result's delivery report
succeeded, and never past a task of the same partition that is unfinished.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue as queues
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable, TypeVar

from . import core, protocol
from ._log import (
    LOG_ATTEMPT,
    LOG_DURATION,
    LOG_ERROR,
    LOG_OFFSET,
    LOG_PARTITION,
    LOG_PARTITIONS,
    LOG_QUEUE,
    LOG_REQUEST,
    LOG_RETRYABLE,
    LOG_STEP,
    LOG_TOPIC,
    log,
)
from .errors import ConfigError, ProduceError
from .protocol import DEFAULT_MAX_RESULT_BYTES, DEFAULT_PREFIX, Record, ResultRecord, default_worker_id, group_name, tasks_topic
from .metrics import WorkerMetrics
from .tracing import WorkerTracing
from .tracker import Entry, Tracker
from .transport import REFUSED, STOPPED, UNKNOWN_PARTITION, Consumer, DeliveryError, KafkaTransport, Producer, Transport

DEFAULT_BROKERS = "127.0.0.1:9092"
DEFAULT_CONCURRENCY = 8
# Cancels remembered for tasks not started yet, per queue.
MAX_EARLY_CANCELS = 10000
DEFAULT_DRAIN_TIMEOUT = 30.0
DEFAULT_COMMIT_INTERVAL = 1.0
# How long a result waits for the producer to learn of a reply partition it
# does not know yet (one just added to the results topic), and the first and
# longest pause between two tries of one result.
UNKNOWN_PARTITION_WAIT = 30.0
FIRST_RETRY = 0.1
MAX_RETRY = 2.0
PASSWORD_ENV = "STEPWISE_SASL_PASSWORD"
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class _Queue:
    name: str
    handler: core.Handler
    concurrency: int


class Worker:
    """Consumes the tasks of the queues it has handlers for and produces
    their results.

    Register handlers with :meth:`handle` or :meth:`handler`, then call
    :meth:`run`, which blocks until SIGTERM, SIGINT or :meth:`stop`, then
    drains: no new task starts, running handlers get ``drain_timeout``
    seconds to finish, their results are produced and committed, and the
    worker leaves its groups so the partitions move to other workers at once.

    The workers of queue ``q`` join consumer group ``<group>.<q>``, where
    ``group`` defaults to ``<prefix>workers`` (as the Go SDK). Security
    options map onto librdkafka's; ``kafka_config`` adds any other librdkafka
    setting of both clients, ``consumer_config`` and ``producer_config``
    settings of one kind of client (``session.timeout.ms``, ``linger.ms``).
    ``transport`` replaces Kafka altogether (see memory.py). ``worker_id``
    is sent on every result (``stepwise-worker``) and shown in the history
    of each attempt; it defaults to ``<host>/<pid>``.
    """

    def __init__(
        self,
        brokers: str | list[str] = DEFAULT_BROKERS,
        prefix: str = DEFAULT_PREFIX,
        group: str | None = None,
        client_id: str = "stepwise-worker-python",
        *,
        sasl_mechanism: str | None = None,
        sasl_username: str | None = None,
        sasl_password: str | None = None,
        tls: bool = False,
        tls_ca: str | None = None,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        kafka_config: dict[str, Any] | None = None,
        consumer_config: dict[str, Any] | None = None,
        producer_config: dict[str, Any] | None = None,
        transport: Transport | None = None,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
        max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
        metrics: Any = None,
        worker_id: str | None = None,
        tracing: Any = None,
    ) -> None:
        if group == "":
            raise ConfigError("stepwise: empty group name")
        if drain_timeout <= 0:
            raise ConfigError(f"stepwise: drain timeout must be positive, got {drain_timeout}")
        if commit_interval <= 0:
            raise ConfigError(f"stepwise: commit interval must be positive, got {commit_interval}")
        if max_result_bytes < 256:
            raise ConfigError(f"stepwise: max result bytes must be at least 256, got {max_result_bytes}")
        self.prefix = prefix
        self.group = group if group is not None else prefix + "workers"
        self.drain_timeout = drain_timeout
        self.commit_interval = commit_interval
        self.max_result_bytes = max_result_bytes
        if worker_id == "":
            raise ConfigError("stepwise: empty worker id")
        self.worker_id = worker_id if worker_id is not None else default_worker_id()
        self._transport = transport
        self._consumer_config = dict(consumer_config or {})
        self._producer_config = dict(producer_config or {})
        self._kafka_config = _kafka_config(
            brokers,
            client_id,
            sasl_mechanism=sasl_mechanism,
            sasl_username=sasl_username,
            sasl_password=sasl_password,
            tls=tls,
            tls_ca=tls_ca,
            tls_cert=tls_cert,
            tls_key=tls_key,
            extra=kafka_config or {},
        )
        # A prometheus_client registry (True: its default registry) gets the
        # worker's metrics (metrics.py); None: no metrics, no cost.
        self._metrics: WorkerMetrics | None = None
        if metrics is not None and metrics is not False:
            if metrics is True:
                from prometheus_client import REGISTRY

                metrics = REGISTRY
            self._metrics = WorkerMetrics(metrics)
        # An OpenTelemetry tracer provider (True: the global one) traces
        # every handler call (tracing.py); None: no spans, no cost.
        self._tracing: WorkerTracing | None = None
        if tracing is not None and tracing is not False:
            self._tracing = WorkerTracing(None if tracing is True else tracing, self.worker_id)
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Lock()
        self._running = False
        self._stopping = threading.Event()
        self._error: BaseException | None = None

    @property
    def kafka_config(self) -> dict[str, Any]:
        """The librdkafka settings shared by the worker's clients."""
        return dict(self._kafka_config)

    def handle(self, queue: str, fn: Callable[..., Any], concurrency: int = DEFAULT_CONCURRENCY) -> None:
        """Registers fn for the tasks of ``queue`` (topic
        ``<prefix>tasks.<queue>``), with up to ``concurrency`` tasks running
        at once in this worker; tasks beyond it wait in Kafka.

        fn is ``fn(task) -> dict``, ``fn(correlation_id, msg) -> dict``
        (the original manager's shape, told apart by its two positional
        parameters), or an ``async def`` of either shape. Returning None
        means ``{}``; raising NonRetryableError fails the step for good; any
        other exception is retried per the step's retry policy.
        """
        with self._lock:
            if self._running:
                raise ConfigError(f"stepwise: handle({queue!r}) after run started")
            if not queue:
                raise ConfigError("stepwise: empty queue name")
            if queue in self._queues:
                raise ConfigError(f"stepwise: queue {queue!r} registered twice")
            if concurrency < 1:
                raise ConfigError(f"stepwise: concurrency {concurrency} for queue {queue!r}; must be at least 1")
            self._queues[queue] = _Queue(queue, core.adapt(fn), concurrency)

    def handler(self, queue: str, concurrency: int = DEFAULT_CONCURRENCY) -> Callable[[F], F]:
        """Decorator form of :meth:`handle`; returns the function unchanged."""

        def register(fn: F) -> F:
            self.handle(queue, fn, concurrency)
            return fn

        return register

    def stop(self) -> None:
        """Asks :meth:`run` to drain and return. Safe from any thread and
        from signal handlers."""
        self._stopping.set()

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self._error is None:
                self._error = exc
        self._stopping.set()

    def run(self, install_signal_handlers: bool = True) -> None:
        """Consumes until stopped, then drains and returns. Raises
        ProduceError when a result could not be produced (the unanswered
        tasks run again on the next worker) and ConfigError when there is
        nothing to run."""
        with self._lock:
            if self._running:
                raise ConfigError("stepwise: worker is already running")
            if not self._queues:
                raise ConfigError("stepwise: worker has no handlers; call handle before run")
            self._running = True
            qs = list(self._queues.values())
        transport = self._transport or KafkaTransport(self._kafka_config, self._consumer_config, self._producer_config)
        producer = transport.producer()

        aloop: asyncio.AbstractEventLoop | None = None
        aloop_thread: threading.Thread | None = None
        if any(q.handler.is_async for q in qs):
            aloop = asyncio.new_event_loop()
            aloop_thread = threading.Thread(target=aloop.run_forever, name="stepwise-asyncio", daemon=True)
            aloop_thread.start()

        polling = threading.Event()
        polling.set()

        def poll_producer() -> None:
            while polling.is_set():
                producer.poll(0.05)

        poller = threading.Thread(target=poll_producer, name="stepwise-producer", daemon=True)
        poller.start()

        restore = self._install_signals() if install_signal_handlers else None
        runners: list[_QueueRunner] = []
        try:
            for q in qs:
                consumer = transport.consumer(group_name(self.group, q.name), tasks_topic(self.prefix, q.name))
                runners.append(_QueueRunner(self, q, consumer, producer, aloop))
            threads = [threading.Thread(target=r.run, name=f"stepwise-consume-{r.q.name}", daemon=True) for r in runners]
            for t in threads:
                t.start()
            log.info("worker started", extra={LOG_QUEUE: [q.name for q in qs]})
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        finally:
            self._stopping.set()
            polling.clear()
            poller.join()
            left = producer.flush(10.0)
            if left:
                log.warning("results still unsent at close; their tasks were not committed", extra={"unsent": left})
            if aloop is not None and aloop_thread is not None:
                aloop.call_soon_threadsafe(aloop.stop)
                aloop_thread.join(5.0)
            if restore is not None:
                restore()
            with self._lock:
                self._running = False
            log.info("worker stopped")
        if self._error is not None:
            raise self._error

    def _install_signals(self) -> Callable[[], None] | None:
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_signal(signum: int, _frame: FrameType | None) -> None:
            log.info("worker draining", extra={"signal": signal.Signals(signum).name, "timeout": self.drain_timeout})
            self.stop()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return restore


def _kafka_config(
    brokers: str | list[str],
    client_id: str,
    *,
    sasl_mechanism: str | None,
    sasl_username: str | None,
    sasl_password: str | None,
    tls: bool,
    tls_ca: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    extra: dict[str, Any],
) -> dict[str, Any]:
    servers = brokers if isinstance(brokers, str) else ",".join(brokers)
    if not servers.strip():
        raise ConfigError("stepwise: no brokers")
    conf: dict[str, Any] = {"bootstrap.servers": servers, "client.id": client_id}
    use_tls = tls or bool(tls_ca or tls_cert or tls_key)
    if bool(tls_cert) != bool(tls_key):
        raise ConfigError("stepwise: tls_cert and tls_key go together")
    if sasl_mechanism:
        mech = sasl_mechanism.upper()
        if mech not in SASL_MECHANISMS:
            raise ConfigError(f"stepwise: unknown SASL mechanism {sasl_mechanism!r}; want one of {', '.join(SASL_MECHANISMS)}")
        conf["security.protocol"] = "SASL_SSL" if use_tls else "SASL_PLAINTEXT"
        conf["sasl.mechanism"] = mech
        conf["sasl.username"] = sasl_username or ""
        conf["sasl.password"] = sasl_password if sasl_password is not None else os.environ.get(PASSWORD_ENV, "")
    elif sasl_username:
        raise ConfigError("stepwise: sasl_username given without sasl_mechanism")
    elif use_tls:
        conf["security.protocol"] = "SSL"
    if tls_ca:
        conf["ssl.ca.location"] = tls_ca
    if tls_cert:
        conf["ssl.certificate.location"] = tls_cert
        conf["ssl.key.location"] = tls_key
    conf.update(extra)
    return conf


class _Pool:
    """A fixed set of daemon threads. Daemon, so a handler that never
    returns does not hold the process at exit: its task is uncommitted and
    runs again elsewhere."""

    def __init__(self, name: str, size: int) -> None:
        self.jobs: queues.SimpleQueue[Callable[[], None] | None] = queues.SimpleQueue()
        self.threads = [threading.Thread(target=self._loop, name=f"{name}-{i}", daemon=True) for i in range(size)]
        for t in self.threads:
            t.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            job()

    def submit(self, job: Callable[[], None]) -> None:
        self.jobs.put(job)

    def stop(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)


@dataclass(frozen=True)
class _Done:
    """A task ended: its result was delivered (error None), refused or
    lost (error set), or there was none to give (delivered False)."""

    entry: Entry
    error: DeliveryError | None = None
    result: ResultRecord | None = None
    delivered: bool = True  # False: abandoned, release without commit


class _QueueRunner:
    """One queue: its consumer, tracker and backlog, owned by one thread."""

    def __init__(
        self,
        worker: Worker,
        q: _Queue,
        consumer: Consumer,
        producer: Producer,
        aloop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.w = worker
        self.q = q
        self.consumer = consumer
        self.producer = producer
        self.aloop = aloop
        self.events: queues.SimpleQueue[_Done] = queues.SimpleQueue()
        self.tracker = Tracker()
        self.backlog: deque[tuple[Record, Entry]] = deque()
        # Cancellation flags of running tasks by task key, and cancels that
        # arrived before their task started (bounded, oldest dropped).
        self.running: dict[str, threading.Event] = {}
        self.early: dict[str, None] = {}
        self.inflight = 0
        self.marks: dict[int, int] = {}  # partition -> offset to commit, not yet committed
        self.paused = False
        self.closing = False
        self.abandoned = threading.Event()
        self.pool = None if q.handler.is_async else _Pool(f"stepwise-{q.name}", q.concurrency)
        self.extra = {LOG_QUEUE: q.name}

    # Consumer thread.

    def run(self) -> None:
        try:
            self.consumer.subscribe(self._on_assign, self._on_revoke, self._on_lost)
            last_commit = last_poll = time.monotonic()
            conc = self.q.concurrency
            while not self.w._stopping.is_set():
                self._drain_events()
                self._start_ready()
                if self.inflight >= conc or self.backlog:
                    # Full: fetch at most conc records ahead (a cancel of a
                    # running task must still be read), then nothing more,
                    # but keep serving the group (rebalances, liveness)
                    # while waiting for a free slot.
                    ahead = len(self.backlog) < conc
                    if self.paused == ahead:
                        parts = self.consumer.assignment()
                        if ahead:
                            self.consumer.resume(parts)
                        else:
                            self.consumer.pause(parts)
                        self.paused = not ahead
                    try:
                        self._on_done(self.events.get(timeout=0.05))
                    except queues.Empty:
                        pass
                    if time.monotonic() - last_poll >= 0.1:
                        self._take(self.consumer.consume(max(conc - len(self.backlog), 1), 0))
                        last_poll = time.monotonic()
                else:
                    if self.paused:
                        self.consumer.resume(self.consumer.assignment())
                        self.paused = False
                    self._take(self.consumer.consume(conc - self.inflight, 0.05))
                    last_poll = time.monotonic()
                if time.monotonic() - last_commit >= self.w.commit_interval:
                    self._commit(sync=False)
                    last_commit = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - a broken consumer stops the worker
            log.exception("queue consumer failed", extra={**self.extra, LOG_ERROR: str(exc)})
            self.w._fail(exc)
        finally:
            self._shutdown()

    def _take(self, recs: list[Record]) -> None:
        for r in recs:
            e = self.tracker.add(r.partition, r.offset)
            if e is None:
                continue
            key = protocol.control_key(r)
            if key is None:
                self.backlog.append((r, e))
                continue
            # A cancel control message: stop the task if it runs, skip it
            # if it waits; the message itself is done at once.
            flag = self.running.get(key)
            if flag is not None:
                flag.set()
                log.info("task cancelled", extra={**self.extra, LOG_REQUEST: (r.key or b"").decode(errors="replace"), LOG_OFFSET: r.offset})
            else:
                self.early[key] = None
                while len(self.early) > MAX_EARLY_CANCELS:
                    del self.early[next(iter(self.early))]
            if self.tracker.start(e):
                self._mark(e)

    def _mark(self, e: Entry) -> None:
        mark = self.tracker.finish(e)
        if mark is not None:
            self.marks[e.part.number] = mark

    def _start_ready(self) -> None:
        while self.backlog and self.inflight < self.q.concurrency:
            rec, e = self.backlog.popleft()
            if not self.tracker.start(e):
                continue
            key = protocol.record_task_key(rec)
            if key in self.early:
                # Cancelled before it started: nothing to run or answer.
                del self.early[key]
                self._mark(e)
                continue
            flag = threading.Event()
            self.running[key] = flag
            e.key = key
            self.inflight += 1
            if self.aloop is not None and self.q.handler.is_async:
                asyncio.run_coroutine_threadsafe(self._process_async(rec, e, flag), self.aloop)
            else:
                assert self.pool is not None
                self.pool.submit(lambda rec=rec, e=e, flag=flag: self._process_sync(rec, e, flag))  # type: ignore[misc]

    def _drain_events(self) -> None:
        while True:
            try:
                ev = self.events.get_nowait()
            except queues.Empty:
                return
            self._on_done(ev)

    def _on_done(self, ev: _Done) -> None:
        self.inflight -= 1
        self.running.pop(ev.entry.key, None)
        if not ev.delivered:
            self.tracker.release(ev.entry)
            return
        if ev.error is not None:
            if not ev.error.permanent:
                # Shutting down, or the producer is unusable: leave the task
                # uncommitted and stop; it runs again after a restart.
                self.tracker.release(ev.entry)
                req = ev.result.key.decode(errors="replace") if ev.result else ""
                self.w._fail(ProduceError(f"stepwise: producing a result failed for request {req}: {ev.error}"))
                return
            # Refused for good: retrying cannot help, and stopping would
            # only make every restart fail the same way.
            r = ev.result
            log.error(
                "result refused by the broker; dropped",
                extra={
                    **self.extra,
                    LOG_REQUEST: r.key.decode(errors="replace") if r else "",
                    LOG_TOPIC: r.topic if r else "",
                    LOG_PARTITION: r.partition if r else -1,
                    LOG_ERROR: str(ev.error),
                },
            )
        self._mark(ev.entry)

    def _commit(self, sync: bool, partitions: list[int] | None = None) -> None:
        offsets = {p: o for p, o in self.marks.items() if partitions is None or p in partitions}
        if not offsets:
            return
        try:
            self.consumer.commit(offsets, asynchronous=not sync)
        except Exception as exc:  # noqa: BLE001 - a failed commit only means redelivery
            log.warning("commit failed; finished tasks may run again", extra={**self.extra, LOG_ERROR: str(exc)})
            return
        for p, o in offsets.items():
            if self.marks.get(p) == o:
                del self.marks[p]

    def _on_assign(self, parts: list[int]) -> None:
        self.tracker.assign(parts)
        self.paused = False  # newly assigned partitions start unpaused
        log.info("partitions assigned", extra={**self.extra, LOG_PARTITIONS: parts})

    def _on_revoke(self, parts: list[int]) -> None:
        # Wait (bounded) for the running tasks of the revoked partitions so
        # their results are committed here rather than run twice.
        self.tracker.close(parts)
        self.backlog = deque(x for x in self.backlog if x[1].part.number not in parts)
        deadline = time.monotonic() + (0.0 if self.closing else self.w.drain_timeout)
        while self.tracker.running(parts) > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._on_done(self.events.get(timeout=left))
            except queues.Empty:
                break
        left_running = self.tracker.running(parts)
        if left_running:
            log.warning(
                "partitions revoked with tasks still running; they will run again elsewhere",
                extra={**self.extra, LOG_PARTITIONS: parts, "running": left_running},
            )
        self._commit(sync=True, partitions=parts)
        self._forget(parts)
        log.info("partitions revoked", extra={**self.extra, LOG_PARTITIONS: parts})

    def _on_lost(self, parts: list[int]) -> None:
        self._forget(parts)
        log.warning("partitions lost; their running tasks will run again elsewhere", extra={**self.extra, LOG_PARTITIONS: parts})

    def _forget(self, parts: list[int]) -> None:
        self.tracker.drop(parts)
        self.backlog = deque(x for x in self.backlog if x[1].part.number not in parts)
        for p in parts:
            self.marks.pop(p, None)

    def _shutdown(self) -> None:
        # Tasks not started stay uncommitted and run again on the next owner.
        self.backlog.clear()
        deadline = time.monotonic() + self.w.drain_timeout
        while self.inflight > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._on_done(self.events.get(timeout=min(left, 0.1)))
            except queues.Empty:
                pass
        if self.inflight > 0:
            self.abandoned.set()
            log.warning("drain timeout: leaving running handlers behind; their tasks will run again elsewhere", extra={**self.extra, "running": self.inflight})
        try:
            self._commit(sync=True)
            self.closing = True
            self.consumer.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("closing the consumer failed; finished tasks may run again", extra={**self.extra, LOG_ERROR: str(exc)})
        if self.pool is not None:
            self.pool.stop()

    # Handler threads and the event loop.

    def _process_sync(self, rec: Record, e: Entry, cancelled: threading.Event) -> None:
        try:
            p = core.prepare(rec, self.q.name, cancelled=cancelled, worker_id=self.w.worker_id)
            if p.reply is None or p.result is not None:
                self._deliver(rec, e, p, p.result)
                return
            assert p.task is not None
            start = time.monotonic()
            done = self._observe(rec, p)
            tr = self.w._tracing
            stop_beats = self._start_beats(p)
            try:
                if tr is None:
                    out, err = core.call_sync(self.q.handler, p.task)
                    span = None
                else:
                    with tr.span(p.task) as span:
                        out, err = core.call_sync(self.q.handler, p.task)
            finally:
                stop_beats()
            self._finish(rec, e, p, out, err, start, done, span)
        except BaseException as exc:  # noqa: BLE001 - the consumer must hear back
            # A defect of the SDK, not of the handler: stop rather than
            # leave a task silently unanswered.
            log.exception("task processing failed", extra={**self.extra, LOG_ERROR: str(exc)})
            self.events.put(_Done(e, delivered=False))
            self.w._fail(exc)

    async def _process_async(self, rec: Record, e: Entry, cancelled: threading.Event) -> None:
        try:
            p = core.prepare(rec, self.q.name, cancelled=cancelled, worker_id=self.w.worker_id)
            if p.reply is None or p.result is not None:
                self._deliver(rec, e, p, p.result)
                return
            assert p.task is not None
            start = time.monotonic()
            done = self._observe(rec, p)
            tr = self.w._tracing
            stop_beats = self._start_beats(p)
            try:
                if tr is None:
                    out, err = await core.call_async(self.q.handler, p.task)
                    span = None
                else:
                    with tr.span(p.task) as span:
                        out, err = await core.call_async(self.q.handler, p.task)
            finally:
                stop_beats()
            self._finish(rec, e, p, out, err, start, done, span)
        except BaseException as exc:  # noqa: BLE001 - the consumer must hear back
            # A defect of the SDK, not of the handler: stop rather than
            # leave a task silently unanswered.
            log.exception("task processing failed", extra={**self.extra, LOG_ERROR: str(exc)})
            self.events.put(_Done(e, delivered=False))
            self.w._fail(exc)

    def _start_beats(self, p: core.Prepared) -> Callable[[], None]:
        """Sends the task's heartbeats while its handler runs, when the
        task asks for them: every interval from a thread of its own, and
        when the handler calls ``task.heartbeat``. Returns the function
        that stops them."""
        t, reply = p.task, p.reply
        if t is None or reply is None or t.heartbeat_interval <= 0:
            return lambda: None

        def send(details: dict[str, Any] | None) -> None:
            def delivered(err: Any) -> None:
                if err is not None:
                    log.warning("heartbeat not sent", extra={**self.extra, LOG_REQUEST: t.request, LOG_STEP: t.step, LOG_ERROR: str(err)})

            self.producer.produce(reply.heartbeat(details), delivered)

        t.beats.send = send
        stopped = threading.Event()

        def loop() -> None:
            while not stopped.wait(t.heartbeat_interval):
                t.beats.beat()

        beater = threading.Thread(target=loop, name="stepwise-heartbeat", daemon=True)
        beater.start()

        def stop() -> None:
            t.beats.send = None
            stopped.set()
            beater.join()

        return stop

    def _observe(self, rec: Record, p: core.Prepared) -> Callable[[str], None] | None:
        """Starts the metrics of one handler run, when metrics are on."""
        m = self.w._metrics
        if m is None or p.task is None:
            return None
        return m.started(self.q.name, p.task.step, rec.timestamp)

    def _finish(
        self, rec: Record, e: Entry, p: core.Prepared, out: Any, err: Exception | None, start: float,
        done: Callable[[str], None] | None = None,
        span: Any = None,
    ) -> None:
        assert p.reply is not None and p.task is not None
        tr = self.w._tracing
        if self.abandoned.is_set():
            # The drain gave up on this task: no answer, no commit.
            if done:
                done("abandoned")
            if tr and span is not None:
                tr.end(span, "abandoned", None)
            self.events.put(_Done(e, delivered=False))
            return
        if p.task.cancelled.is_set():
            # The request no longer wants it: no result; commit.
            log.info("step cancelled", extra={**self.extra, LOG_REQUEST: p.task.request, LOG_STEP: p.task.step, LOG_ATTEMPT: p.task.attempt})
            if tr and span is not None:
                tr.end(span, "cancelled", None)
            self.events.put(_Done(e))
            return
        res = core.answer(p.reply, out, err, self.w.max_result_bytes)
        if done or (tr and span is not None):
            retryable = res.status != "ok" and json.loads(res.value).get("retryable", False)
            outcome = "succeeded" if res.status == "ok" else "retryable" if retryable else "failed"
            if done:
                done(outcome)
            if tr and span is not None:
                tr.end(span, outcome, res)
        t = p.task
        fields = {
            **self.extra,
            LOG_REQUEST: t.request,
            LOG_STEP: t.step,
            LOG_ATTEMPT: t.attempt,
            LOG_DURATION: round(time.monotonic() - start, 6),
        }
        if res.status == "ok":
            log.info("step done", extra=fields)
        else:
            body = json.loads(res.value)
            log.warning("step failed", extra={**fields, LOG_ERROR: body["message"], LOG_RETRYABLE: body["retryable"]})
        self._deliver(rec, e, p, res)

    def _deliver(self, rec: Record, e: Entry, p: core.Prepared, res: ResultRecord | None) -> None:
        if res is None:
            log.error(
                "task dropped",
                extra={**self.extra, LOG_TOPIC: rec.topic, LOG_PARTITION: rec.partition, LOG_OFFSET: rec.offset, LOG_ERROR: p.problem},
            )
            self.events.put(_Done(e))
            return
        if p.problem:
            log.log(
                logging.ERROR if p.task is None else logging.WARNING,
                "malformed task" if p.task is None else "task not run",
                extra={
                    **self.extra,
                    LOG_REQUEST: p.reply.request if p.reply else "",
                    LOG_STEP: p.reply.step if p.reply else "",
                    LOG_OFFSET: rec.offset,
                    LOG_ERROR: p.problem,
                },
            )
        self._send(e, res)

    def _send(self, e: Entry, res: ResultRecord) -> None:
        """Produces res until the broker takes it or refuses the record
        itself for good, the producer stops, or the drain gives up: any other
        error is retried (a result sent twice is deduplicated by the
        processor, a result dropped strands its request). A partition the
        producer does not know yet is waited for UNKNOWN_PARTITION_WAIT
        seconds (processors only name partitions that exist), then given up
        as refused. Retries wait on timer threads, never on the polling
        thread that reports deliveries."""
        deadline = time.monotonic() + UNKNOWN_PARTITION_WAIT
        wait = FIRST_RETRY
        where = {**self.extra, LOG_REQUEST: res.key.decode(errors="replace"), LOG_TOPIC: res.topic, LOG_PARTITION: res.partition}

        def done(err: DeliveryError | None) -> None:
            self.events.put(_Done(e, err, res))

        def again(refresh: bool) -> None:
            if self.abandoned.is_set():
                done(DeliveryError("stepwise: the drain ended before the result was taken", STOPPED))
                return
            if refresh:
                self.producer.refresh(res.topic)
            self.producer.produce(res, on_delivery)

        def on_delivery(err: DeliveryError | None) -> None:
            nonlocal wait
            if err is None or err.kind in (REFUSED, STOPPED):
                done(err)
                return
            unknown = err.kind == UNKNOWN_PARTITION
            if unknown and time.monotonic() >= deadline:
                done(DeliveryError(str(err), REFUSED))
                return
            if unknown:
                log.info("reply partition not known yet; reading the metadata again", extra=where)
            else:
                log.warning("producing a result failed; retrying", extra={**where, LOG_ERROR: str(err), "retry_in": wait})
            t = threading.Timer(wait, again, args=(unknown,))
            t.daemon = True
            t.start()
            wait = min(2 * wait, MAX_RETRY)

        again(False)
