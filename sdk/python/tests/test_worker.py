"""The worker runtime on the in-memory broker: handler shapes, bounded
concurrency, commits after delivery, redelivery after a crash, drain."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from confluent_kafka import KafkaError

from stepwise_worker import ConfigError, NonRetryableError, ProduceError, Task, Worker, adapt, handle_record
from stepwise_worker import worker as worker_module
from stepwise_worker.memory import MemoryBroker
from stepwise_worker.transport import REFUSED, STOPPED, TRANSIENT, UNKNOWN_PARTITION, DeliveryError, delivery_error
from stepwise_worker.protocol import Record, format_rfc3339, parse_rfc3339

TASKS = "stepwise.tasks.q"
RESULTS = "stepwise.results"
GROUP = "stepwise.workers.q"


def headers(request: str, step: str = "s", deadline: str | None = None) -> list[tuple[str, bytes]]:
    h = {
        "stepwise-request": request,
        "stepwise-workflow": "wf",
        "stepwise-step": step,
        "stepwise-attempt": "1",
        "stepwise-instance": request,
        "stepwise-reply-topic": RESULTS,
        "stepwise-reply-partition": "0",
    }
    if deadline:
        h["stepwise-deadline"] = deadline
    return [(k, v.encode()) for k, v in h.items()]


def broker_with(n: int, partitions: int = 1) -> MemoryBroker:
    b = MemoryBroker()
    b.create_topic(TASKS, partitions)
    b.create_topic(RESULTS, 1)
    for i in range(n):
        b.append(TASKS, i % partitions, f"r-{i}".encode(), json.dumps({"i": i}).encode(), headers(f"r-{i}"))
    return b


def start(w: Worker) -> threading.Thread:
    t = threading.Thread(target=w.run, kwargs={"install_signal_handlers": False})
    t.start()
    return t


def outputs(b: MemoryBroker) -> list[Any]:
    return [json.loads(r.value or b"") for r in b.records(RESULTS)]


def test_decorator_legacy_shape_and_correlation_id() -> None:
    b = broker_with(0)
    b.append(TASKS, 0, b"r", b'{"x": 1}', headers("req-1", step="docs[2]/pages[0]/ocr"))
    w = Worker(transport=b, commit_interval=0.05)
    seen = []

    @w.handler("q")
    def ocr(correlation_id: str, msg: dict) -> dict:
        seen.append(correlation_id)
        return {"y": msg["x"] + 1}

    assert ocr("c", {"x": 1}) == {"y": 2}  # the decorator returns the function
    t = start(w)
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 1, 5)
    w.stop()
    t.join(5)
    assert seen == ["c", "req-1:ocr"]
    assert outputs(b) == [{"y": 2}]


def test_concurrency_is_bounded_and_every_offset_committed() -> None:
    n, conc = 40, 3
    b = broker_with(n, partitions=4)
    lock = threading.Lock()
    running = peak = 0

    def h(task: Task) -> dict:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.005)
        with lock:
            running -= 1
        return {"i": task.input["i"]}

    w = Worker(transport=b, commit_interval=0.05)
    w.handle("q", h, concurrency=conc)
    t = start(w)
    assert b.wait(lambda: all(b.committed.get((GROUP, TASKS, p)) == n // 4 for p in range(4)), 10)
    w.stop()
    t.join(5)
    assert sorted(o["i"] for o in outputs(b)) == list(range(n))
    assert 1 < peak <= conc


def test_async_handlers_run_concurrently() -> None:
    b = broker_with(4)
    w = Worker(transport=b, commit_interval=0.05)
    gate = 0
    peak = 0

    @w.handler("q", concurrency=4)
    async def h(task: Task) -> dict:
        nonlocal gate, peak
        gate += 1
        peak = max(peak, gate)
        await asyncio.sleep(0.05)
        gate -= 1
        return {}

    t = start(w)
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 4, 5)
    w.stop()
    t.join(5)
    assert peak > 1


def test_crash_before_commit_redelivers_to_the_next_worker() -> None:
    b = broker_with(1)
    release = threading.Event()
    first = Worker(transport=b, drain_timeout=0.2)
    first.handle("q", lambda task: release.wait() and {"by": "first"})
    t1 = start(first)
    assert b.wait(lambda: GROUP in b.members, 5)
    time.sleep(0.2)  # the handler is now blocked
    consumer = b.members[GROUP]
    consumer.crash()  # type: ignore[attr-defined]
    first.stop()
    t1.join(5)
    assert b.committed_offset(GROUP, TASKS, 0) is None

    second = Worker(transport=b, commit_interval=0.05)
    second.handle("q", lambda task: {"by": "second"})
    t2 = start(second)
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 1, 5)
    second.stop()
    t2.join(5)
    release.set()
    assert outputs(b) == [{"by": "second"}]


def test_drain_finishes_running_handlers() -> None:
    b = broker_with(1)
    started = threading.Event()

    def slow(task: Task) -> dict:
        started.set()
        time.sleep(0.3)
        return {"done": True}

    w = Worker(transport=b, commit_interval=10)
    w.handle("q", slow)
    t = start(w)
    assert started.wait(5)
    w.stop()
    t.join(5)
    assert outputs(b) == [{"done": True}]
    assert b.committed_offset(GROUP, TASKS, 0) == 1


def test_drain_timeout_abandons_without_answer_or_commit() -> None:
    b = broker_with(1)
    started, release = threading.Event(), threading.Event()

    def stuck(task: Task) -> dict:
        started.set()
        release.wait(5)
        return {}

    w = Worker(transport=b, drain_timeout=0.2)
    w.handle("q", stuck)
    t = start(w)
    assert started.wait(5)
    w.stop()
    t.join(5)
    assert not t.is_alive()
    release.set()
    time.sleep(0.1)
    assert outputs(b) == []
    assert b.committed_offset(GROUP, TASKS, 0) is None


def test_unknown_reply_partition_is_logged_and_committed(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    # Waited for a while (the partition may just have been added), then
    # given up as refused.
    monkeypatch.setattr(worker_module, "UNKNOWN_PARTITION_WAIT", 0.5)
    caplog.set_level(logging.INFO)
    b = broker_with(0)
    h = dict(headers("r"))
    h["stepwise-reply-partition"] = b"9"  # the results topic has one
    b.append(TASKS, 0, b"r", b"{}", list(h.items()))
    w = Worker(transport=b, commit_interval=0.05)
    w.handle("q", lambda task: {})
    t = start(w)
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 1, 5)
    w.stop()
    t.join(5)
    assert any(r.message == "result refused by the broker; dropped" and getattr(r, "request") == "r" for r in caplog.records)
    assert any(r.message == "reply partition not known yet; reading the metadata again" for r in caplog.records)


def test_partition_added_while_the_result_waits_gets_it() -> None:
    b = broker_with(0)
    h = dict(headers("r"))
    h["stepwise-reply-partition"] = b"1"  # not there yet
    b.append(TASKS, 0, b"r", b'{"n": 1}', list(h.items()))
    w = Worker(transport=b, commit_interval=0.05)
    w.handle("q", lambda task: task.input)
    t = start(w)
    time.sleep(0.5)
    with b.lock:
        b.topics[RESULTS].append([])  # the results topic gains partition 1
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 1, 10)
    w.stop()
    t.join(5)
    assert [json.loads(r.value or b"") for r in b.records(RESULTS, 1)] == [{"n": 1}]


class _RefusingTransport:
    """The in-memory broker, whose producer fails the first deliveries with
    the given errors."""

    def __init__(self, b: MemoryBroker, *errors: DeliveryError) -> None:
        self.b = b
        self.errors = list(errors)
        self.attempts = 0

    def consumer(self, group: str, topic: str) -> Any:
        return self.b.consumer(group, topic)

    def producer(self) -> Any:
        inner = self.b.producer()
        outer = self

        class P:
            def produce(self, rec: Any, on_delivery: Any) -> None:
                outer.attempts += 1
                if outer.errors:
                    err = outer.errors.pop(0)
                    threading.Thread(target=on_delivery, args=(err,)).start()
                    return
                inner.produce(rec, on_delivery)

            def poll(self, timeout: float) -> None:
                inner.poll(timeout)

            def flush(self, timeout: float) -> int:
                return inner.flush(timeout)

            def refresh(self, topic: str) -> None:
                inner.refresh(topic)

        return P()


def test_result_refused_for_a_reason_not_its_own_is_sent_again(caplog: pytest.LogCaptureFixture) -> None:
    # A policy violation (or an authorization failure, a broker that no
    # longer knows the producer) is not the record's fault: dropping the
    # result would strand its request, stopping would only run it again.
    b = broker_with(1)
    tr = _RefusingTransport(
        b,
        delivery_error(KafkaError(KafkaError.POLICY_VIOLATION)),
        delivery_error(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)),
    )
    w = Worker(transport=tr, commit_interval=0.05)
    w.handle("q", lambda task: {"done": task.input["i"]})
    t = start(w)
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 1, 10)
    w.stop()
    t.join(5)
    assert outputs(b) == [{"done": 0}]
    assert tr.attempts == 3
    assert sum(r.message == "producing a result failed; retrying" for r in caplog.records) == 2


def test_result_refused_for_good_is_dropped_and_committed(caplog: pytest.LogCaptureFixture) -> None:
    b = broker_with(1)
    tr = _RefusingTransport(b, delivery_error(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)))
    w = Worker(transport=tr, commit_interval=0.05)
    w.handle("q", lambda task: {})
    t = start(w)
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 1, 10)
    w.stop()
    t.join(5)
    assert outputs(b) == []
    assert tr.attempts == 1
    assert any(r.message == "result refused by the broker; dropped" for r in caplog.records)


def test_stopped_producer_leaves_the_task_uncommitted() -> None:
    b = broker_with(1)
    tr = _RefusingTransport(b, delivery_error(KafkaError(KafkaError._MSG_TIMED_OUT)))
    w = Worker(transport=tr, commit_interval=0.05)
    w.handle("q", lambda task: {})
    with pytest.raises(ProduceError):
        w.run(install_signal_handlers=False)
    assert outputs(b) == []
    assert b.committed_offset(GROUP, TASKS, 0) is None


@pytest.mark.parametrize(
    "code, kind",
    [
        ("POLICY_VIOLATION", TRANSIENT),
        ("TOPIC_AUTHORIZATION_FAILED", TRANSIENT),
        ("NOT_ENOUGH_REPLICAS", TRANSIENT),
        ("UNKNOWN_PRODUCER_ID", TRANSIENT),
        ("OUT_OF_ORDER_SEQUENCE_NUMBER", TRANSIENT),
        ("MSG_SIZE_TOO_LARGE", REFUSED),
        ("RECORD_LIST_TOO_LARGE", REFUSED),
        ("INVALID_RECORD", REFUSED),
        ("INVALID_MSG", REFUSED),  # CORRUPT_MESSAGE
        ("TOPIC_EXCEPTION", REFUSED),
        ("UNKNOWN_TOPIC_OR_PART", REFUSED),
        ("_UNKNOWN_PARTITION", UNKNOWN_PARTITION),
        ("_MSG_TIMED_OUT", STOPPED),
        ("_DESTROY", STOPPED),
    ],
)
def test_delivery_errors_follow_the_go_sdk(code: str, kind: str) -> None:
    assert delivery_error(KafkaError(getattr(KafkaError, code))).kind == kind


def test_fatal_producer_error_stops() -> None:
    assert delivery_error(KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, fatal=True)).kind == STOPPED


def test_async_deadline_cancels_the_handler() -> None:
    soon = format_rfc3339(datetime.now(timezone.utc) + timedelta(milliseconds=100))
    rec = Record(TASKS, 0, 0, b"r", b"{}", headers("r", deadline=soon))

    async def slow(task: Task) -> dict:
        await asyncio.sleep(5)
        return {}

    res = handle_record(rec, slow)
    assert res is not None and res.status == "error"
    body = json.loads(res.value)
    assert body["retryable"] is True and "deadline" in body["message"]


@pytest.mark.parametrize(
    "out,retryable,contains",
    [
        ("text", True, "a string"),
        (3, True, "a number"),
        ({"x": float("nan")}, True, "encode output"),
        ({"x": object()}, True, "encode output"),
        ({"big": "x" * 2000}, False, "exceeds the limit"),
    ],
)
def test_bad_outputs(out: Any, retryable: bool, contains: str) -> None:
    rec = Record(TASKS, 0, 0, b"r", b"{}", headers("r"))
    res = handle_record(rec, lambda task: out, max_bytes=1000)
    assert res is not None and res.status == "error"
    body = json.loads(res.value)
    assert body["retryable"] is retryable and contains in body["message"]


def test_non_retryable_and_empty_messages() -> None:
    rec = Record(TASKS, 0, 0, b"r", b"{}", headers("r"))

    def perm(task: Task) -> dict:
        raise NonRetryableError("bad page") from KeyError("x")

    def bare(task: Task) -> dict:
        raise KeyError

    assert json.loads(handle_record(rec, perm).value) == {"message": "bad page", "retryable": False}  # type: ignore[union-attr]
    assert json.loads(handle_record(rec, bare).value) == {"message": "KeyError", "retryable": True}  # type: ignore[union-attr]


def test_adapt_detects_shapes() -> None:
    assert not adapt(lambda task: {}).legacy
    assert adapt(lambda cid, msg: {}).legacy
    assert adapt(lambda task, extra=None: {}).legacy is False

    async def a(task: Task) -> dict:
        return {}

    assert adapt(a).is_async
    with pytest.raises(ConfigError):
        adapt(lambda: {})
    with pytest.raises(ConfigError):
        adapt(lambda a, b, c: {})


def test_handle_rejects_misuse() -> None:
    w = Worker(transport=MemoryBroker())
    w.handle("q", lambda t: {})
    with pytest.raises(ConfigError):
        w.handle("q", lambda t: {})
    with pytest.raises(ConfigError):
        w.handle("", lambda t: {})
    with pytest.raises(ConfigError):
        w.handle("r", lambda t: {}, concurrency=0)
    with pytest.raises(ConfigError):
        Worker(transport=MemoryBroker()).run(install_signal_handlers=False)


def test_kafka_config_security_and_group_default() -> None:
    w = Worker(brokers=["a:1", "b:2"], prefix="p.", sasl_mechanism="scram-sha-512", sasl_username="u", sasl_password="pw", tls_ca="/ca.pem")
    assert w.group == "p.workers"
    assert w.kafka_config == {
        "bootstrap.servers": "a:1,b:2",
        "client.id": "stepwise-worker-python",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "u",
        "sasl.password": "pw",
        "ssl.ca.location": "/ca.pem",
    }
    assert Worker(tls_cert="c", tls_key="k").kafka_config["security.protocol"] == "SSL"
    assert Worker(group="g").group == "g"
    with pytest.raises(ConfigError):
        Worker(sasl_username="u")
    with pytest.raises(ConfigError):
        Worker(sasl_mechanism="GSSAPI")
    with pytest.raises(ConfigError):
        Worker(tls_cert="c")


def test_rfc3339_like_go() -> None:
    t = parse_rfc3339("2026-11-25T10:00:00.123456789+02:00")
    assert t == datetime(2026, 11, 25, 8, 0, 0, 123456, tzinfo=timezone.utc)
    for bad in ("2026-11-25 10:00:00Z", "2026-11-25T10:00:00", "2026-13-01T00:00:00Z", "2026-11-25t10:00:00z", "tomorrow"):
        assert parse_rfc3339(bad) is None, bad
    assert format_rfc3339(datetime(2001, 1, 1, tzinfo=timezone.utc)) == "2001-01-01T00:00:00Z"


def cancel_headers(request: str, step: str = "s") -> list[tuple[str, bytes]]:
    """The headers of the cancel control message the processors write for
    the task of ``headers(request, step)``."""
    h = {"stepwise-control": "cancel", "stepwise-request": request, "stepwise-workflow": "wf", "stepwise-step": step, "stepwise-attempt": "1"}
    return [(k, v.encode()) for k, v in h.items()]


def test_cancel_reaches_a_running_handler() -> None:
    b = broker_with(0)
    b.append(TASKS, 0, b"r-c", b"{}", headers("r-c"))
    w = Worker(transport=b, commit_interval=0.05)
    running = threading.Event()
    seen: list[bool] = []

    @w.handler("q")
    def slow(task: Task) -> dict:
        running.set()
        seen.append(task.cancelled.wait(10))
        return {"late": True}

    t = start(w)
    assert running.wait(5)
    b.append(TASKS, 0, b"r-c", b'{"reason": "user asked"}', cancel_headers("r-c"))
    # Both records committed, no result for the cancelled task.
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 2, 10)
    w.stop()
    t.join(5)
    assert seen == [True]
    assert outputs(b) == []


def test_cancel_of_a_waiting_task_sends_no_result() -> None:
    """A task whose cancel is queued behind it (the handler slot was busy)
    is either skipped or started with its flag set at once: either way no
    result is sent for it, and every record is committed."""
    b = broker_with(0)
    b.append(TASKS, 0, b"r-busy", b"{}", headers("r-busy"))
    b.append(TASKS, 0, b"r-doomed", b"{}", headers("r-doomed"))
    b.append(TASKS, 0, b"r-doomed", b"{}", cancel_headers("r-doomed"))
    w = Worker(transport=b, commit_interval=0.05)
    release = threading.Event()
    doomed_saw: list[bool] = []

    @w.handler("q", concurrency=1)
    def h(task: Task) -> dict:
        if task.request == "r-doomed":
            doomed_saw.append(task.cancelled.wait(10))
            return {"late": True}
        release.wait(10)
        return {"busy": True}

    t = start(w)
    time.sleep(0.3)
    release.set()
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 3, 10)
    w.stop()
    t.join(5)
    assert doomed_saw in ([], [True])
    assert outputs(b) == [{"busy": True}]


def test_metrics_count_tasks_by_outcome() -> None:
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry()
    n = 12
    b = broker_with(n, partitions=2)

    def h(task: Task) -> dict:
        i = task.input["i"]
        if i % 4 == 1:
            raise ValueError("try again")
        if i % 4 == 2:
            raise NonRetryableError("never")
        return {"i": i}

    w = Worker(transport=b, commit_interval=0.05, metrics=reg)
    w.handle("q", h, concurrency=2)
    t = start(w)
    assert b.wait(lambda: len(b.records(RESULTS)) == n, 10)
    w.stop()
    t.join(5)

    def value(name: str, **labels: str) -> float:
        v = reg.get_sample_value(name, {"queue": "q", **labels})
        return v if v is not None else 0.0

    assert value("stepwise_worker_tasks_total", step="s", outcome="succeeded") == n / 2
    assert value("stepwise_worker_tasks_total", step="s", outcome="retryable") == n / 4
    assert value("stepwise_worker_tasks_total", step="s", outcome="failed") == n / 4
    assert value("stepwise_worker_task_duration_seconds_count", step="s") == n
    assert value("stepwise_worker_queue_wait_seconds_count") == n
    assert value("stepwise_worker_tasks_in_flight") == 0


def test_step_label_drops_fan_out_indexes() -> None:
    from stepwise_worker.metrics import step_label

    assert step_label("docs[3]/pages[10]/ocr") == "docs/pages/ocr"
    assert step_label("a") == "a"


ATTEMPT_SPAN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_tracing_continues_the_task_trace_in_the_handler() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exp = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exp))
    b = broker_with(0)
    b.append(TASKS, 0, b"r-1", b'{"i": 1}', headers("r-1") + [("traceparent", ATTEMPT_SPAN.encode())])
    b.append(TASKS, 0, b"r-2", b'{"i": 2}', headers("r-2"))
    in_handler: dict[str, Any] = {}

    def h(task: Task) -> dict:
        in_handler[task.request] = trace.get_current_span().get_span_context()
        if task.request == "r-2":
            raise ValueError("try again")
        return {}

    w = Worker(transport=b, commit_interval=0.05, tracing=tp)
    w.handle("q", h)
    t = start(w)
    assert b.wait(lambda: len(b.records(RESULTS)) == 2, 10)
    w.stop()
    t.join(5)

    spans = {s.attributes["stepwise.request"]: s for s in exp.get_finished_spans()}
    assert set(spans) == {"r-1", "r-2"}
    s1 = spans["r-1"]
    assert format(s1.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert s1.parent is not None and format(s1.parent.span_id, "016x") == "00f067aa0ba902b7"
    assert s1.name == "handle s"
    assert s1.attributes["stepwise.step"] == "s" and s1.attributes["stepwise.attempt"] == 1
    assert s1.attributes["stepwise.outcome"] == "succeeded"
    assert in_handler["r-1"].span_id == s1.context.span_id, "the handler span is current in the handler"
    # A task without traceparent starts a trace of its own.
    assert spans["r-2"].parent is None
    assert spans["r-2"].attributes["stepwise.outcome"] == "retryable"
    # The results carry the handler spans back.
    by_key = {r.key: dict(r.headers) for r in b.records(RESULTS)}
    assert by_key[b"r-1"]["traceparent"].decode() == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{s1.context.span_id:016x}-01"
    assert "traceparent" in by_key[b"r-2"]


def test_no_tracing_copies_no_traceparent() -> None:
    b = broker_with(0)
    b.append(TASKS, 0, b"r-1", b"{}", headers("r-1") + [("traceparent", ATTEMPT_SPAN.encode())])
    w = Worker(transport=b, commit_interval=0.05)
    w.handle("q", lambda task: {})
    t = start(w)
    assert b.wait(lambda: len(b.records(RESULTS)) == 1, 10)
    w.stop()
    t.join(5)
    assert [k for k, _ in b.records(RESULTS)[0].headers] == ["stepwise-request", "stepwise-step", "stepwise-attempt", "stepwise-status", "stepwise-worker"]
