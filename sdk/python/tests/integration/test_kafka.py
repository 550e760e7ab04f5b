"""Tests against a real Kafka broker at $KAFKA_BROKERS (SASL/SCRAM at
$KAFKA_SASL_BROKERS, default 127.0.0.1:9096, user stepwise). They fail,
never skip, without one: run them with `make test-integration`, which sets
the variable, after `integration/kafka/up`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stepwise_worker import NonRetryableError, Task, Worker

TASK_PARTITIONS = 3
RESULT_PARTITIONS = 4
PROC = Path(__file__).with_name("worker_proc.py")


@pytest.fixture(scope="module")
def brokers() -> str:
    b = os.environ.get("KAFKA_BROKERS", "")
    if not b:
        pytest.fail("KAFKA_BROKERS is not set: start a broker (integration/kafka/up) and run `make test-integration`")
    return b


class Env:
    """One test's topics, under a prefix of its own."""

    def __init__(self, brokers: str) -> None:
        self.brokers = brokers
        self.prefix = f"pytest-{uuid.uuid4().hex[:10]}."
        self.tasks = self.prefix + "tasks.ocr"
        self.results = self.prefix + "results"
        self.group = self.prefix + "workers.ocr"
        self.admin = AdminClient({"bootstrap.servers": brokers})
        futures = self.admin.create_topics(
            [NewTopic(self.tasks, num_partitions=TASK_PARTITIONS, replication_factor=1), NewTopic(self.results, num_partitions=RESULT_PARTITIONS, replication_factor=1)],
            operation_timeout=30,
        )
        for f in futures.values():
            f.result(timeout=30)
        self.producer = Producer({"bootstrap.servers": brokers, "acks": "all"})

    def send_task(self, request: str, value: Any, partition: int = 0, reply_partition: int = 2, step: str = "ocr", extra: dict[str, str] | None = None) -> None:
        headers = {
            "stepwise-request": request,
            "stepwise-workflow": "idp",
            "stepwise-step": step,
            "stepwise-attempt": "1",
            "stepwise-instance": request,
            "stepwise-reply-topic": self.results,
            "stepwise-reply-partition": str(reply_partition),
            **(extra or {}),
        }
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        self.producer.produce(self.tasks, value=body, key=request.encode(), partition=partition, headers=list(headers.items()))
        assert self.producer.flush(10) == 0

    def read_results(self, partition: int | None, want: int, timeout: float = 30.0) -> list[Any]:
        """Reads results (from one partition, or all) until ``want`` arrived."""
        c = Consumer({"bootstrap.servers": self.brokers, "group.id": "reader-" + uuid.uuid4().hex, "isolation.level": "read_committed", "enable.auto.commit": False})
        parts = range(RESULT_PARTITIONS) if partition is None else [partition]
        c.assign([TopicPartition(self.results, p, OFFSET_BEGINNING) for p in parts])
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < want and time.monotonic() < deadline:
                m = c.poll(0.2)
                if m is None or m.error():
                    continue
                out.append(m)
        finally:
            c.close()
        return out

    def committed(self) -> dict[int, int]:
        c = Consumer({"bootstrap.servers": self.brokers, "group.id": self.group})
        try:
            got = c.committed([TopicPartition(self.tasks, p) for p in range(TASK_PARTITIONS)], timeout=10)
        finally:
            c.close()
        return {tp.partition: tp.offset for tp in got}

    def close(self) -> None:
        for f in self.admin.delete_topics([self.tasks, self.results], operation_timeout=30).values():
            try:
                f.result(timeout=30)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass


@pytest.fixture
def env(brokers: str) -> Iterator[Env]:
    e = Env(brokers)
    yield e
    e.close()


class Running:
    """A worker running on a thread of the test."""

    def __init__(self, w: Worker) -> None:
        self.w = w
        self.error: BaseException | None = None
        self.t = threading.Thread(target=self._run)
        self.t.start()

    def _run(self) -> None:
        try:
            self.w.run(install_signal_handlers=False)
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def stop(self) -> None:
        self.w.stop()
        self.t.join(60)
        assert not self.t.is_alive(), "worker did not stop"
        assert self.error is None, self.error


def fast(env: Env, **kw: Any) -> Worker:
    return Worker(brokers=env.brokers, prefix=env.prefix, commit_interval=0.2, consumer_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}, **kw)


def headers_of(m: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in m.headers() or []}


def wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def test_round_trip(env: Env) -> None:
    w = fast(env, worker_id="py-it/1")
    seen: list[Task] = []

    @w.handler("ocr")
    def ocr(task: Task) -> dict:
        seen.append(task)
        return {"text": f"page {task.input['page']}", "traceparent": task.headers.get("traceparent")}

    env.send_task("r-1", {"page": 7}, partition=1, reply_partition=2, step="docs[0]/ocr", extra={"traceparent": "00-abc-01"})
    r = Running(w)
    try:
        got = env.read_results(2, 1)
    finally:
        r.stop()
    assert len(got) == 1
    m = got[0]
    assert m.partition() == 2 and m.key() == b"r-1"
    assert headers_of(m) == {"stepwise-request": "r-1", "stepwise-step": "docs[0]/ocr", "stepwise-attempt": "1", "stepwise-status": "ok", "stepwise-worker": "py-it/1"}
    assert json.loads(m.value()) == {"text": "page 7", "traceparent": "00-abc-01"}
    assert seen[0].instance == "r-1" and seen[0].workflow == "idp"
    # The task's offset is committed: the next task of partition 1 is 1.
    assert env.committed()[1] == 1


def test_errors_async_and_legacy_handlers(env: Env) -> None:
    w = fast(env)

    @w.handler("ocr", concurrency=4)
    async def ocr(task: Task) -> dict:
        if task.input.get("fail") == "permanent":
            raise NonRetryableError("not an image")
        if task.input.get("fail") == "retry":
            raise RuntimeError("engine busy")
        return {"n": task.input["n"]}

    env.send_task("r-ok", {"n": 1}, reply_partition=0)
    env.send_task("r-perm", {"fail": "permanent"}, reply_partition=1)
    env.send_task("r-retry", {"fail": "retry"}, reply_partition=3)
    env.send_task("r-bad", b"[1,2]", reply_partition=3)
    r = Running(w)
    try:
        got = env.read_results(None, 4)
    finally:
        r.stop()
    by = {m.key().decode(): m for m in got}
    assert set(by) == {"r-ok", "r-perm", "r-retry", "r-bad"}
    assert json.loads(by["r-ok"].value()) == {"n": 1} and by["r-ok"].partition() == 0
    assert json.loads(by["r-perm"].value()) == {"message": "not an image", "retryable": False}
    assert by["r-perm"].partition() == 1 and headers_of(by["r-perm"])["stepwise-status"] == "error"
    assert json.loads(by["r-retry"].value()) == {"message": "engine busy", "retryable": True}
    bad = json.loads(by["r-bad"].value())
    assert bad["retryable"] is False and "object" in bad["message"]


def test_legacy_handler_shape(env: Env) -> None:
    w = fast(env)
    calls: list[tuple[str, dict]] = []

    def segment(correlation_id: str, msg: dict) -> dict:
        calls.append((correlation_id, msg))
        return {"words": len(msg["text"].split())}

    w.handle("ocr", segment)
    env.send_task("r-7", {"text": "a b c"}, step="sections[2]/segment-word-counts", extra={"stepwise-instance": "5b1f7c3e-8d2a-4f5e-9c1b-2a3d4e5f6a7b"})
    r = Running(w)
    try:
        got = env.read_results(2, 1)
    finally:
        r.stop()
    assert json.loads(got[0].value()) == {"words": 3}
    assert calls == [("5b1f7c3e-8d2a-4f5e-9c1b-2a3d4e5f6a7b:segment-word-counts", {"text": "a b c"})]


def test_many_tasks_bounded_concurrency_exactly_once(env: Env) -> None:
    """With fewer slots than tasks the worker pauses fetching; every task
    still runs once (no loss, no re-fetch) and every offset is committed."""
    w = fast(env)
    lock = threading.Lock()
    running = 0
    peak = 0

    @w.handler("ocr", concurrency=2)
    def ocr(task: Task) -> dict:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        return {"i": task.input["i"]}

    n = 60
    for i in range(n):
        env.send_task(f"r-{i}", {"i": i}, partition=i % TASK_PARTITIONS, reply_partition=i % RESULT_PARTITIONS)
    r = Running(w)
    try:
        got = env.read_results(None, n, timeout=60)
        wait_for(lambda: env.committed() == {p: n // TASK_PARTITIONS for p in range(TASK_PARTITIONS)}, 20, "all offsets committed")
        time.sleep(1.0)  # nothing more may arrive
        again = env.read_results(None, n + 1, timeout=2)
    finally:
        r.stop()
    assert sorted(json.loads(m.value())["i"] for m in got) == list(range(n))
    assert len(again) == n
    assert peak <= 2
    for m in got:
        assert m.partition() == int(m.key().decode()[2:]) % RESULT_PARTITIONS


def test_kill_before_commit_redelivers(env: Env, tmp_path: Path) -> None:
    """A worker killed while its handler runs never commits; the next worker
    of the group runs the task and answers it."""
    marker = tmp_path / "started"
    marker.touch()
    proc = subprocess.Popen([sys.executable, str(PROC), env.brokers, env.prefix, "hang", str(marker)], stderr=subprocess.PIPE)
    try:
        env.send_task("r-kill", {"page": 1}, partition=0, reply_partition=1)
        wait_for(lambda: marker.read_text().strip() == "r-kill", 30, "the first worker to start the task")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
    assert env.committed()[0] < 0, "nothing may be committed by the killed worker"

    w = fast(env)
    w.handle("ocr", lambda task: {"by": "second", **task.input})
    started = time.monotonic()
    r = Running(w)
    try:
        got = env.read_results(1, 1, timeout=60)
        took = time.monotonic() - started
    finally:
        r.stop()
    assert len(got) == 1
    assert json.loads(got[0].value()) == {"by": "second", "page": 1}
    print(f"redelivered after the kill in {took:.1f}s")


def test_sigterm_drains_and_commits(env: Env, tmp_path: Path) -> None:
    """SIGTERM while a handler runs: the handler finishes, its result is
    produced and committed, and the next worker does not run it again."""
    marker = tmp_path / "started"
    marker.touch()
    proc = subprocess.Popen([sys.executable, str(PROC), env.brokers, env.prefix, "slow", str(marker)], stderr=subprocess.PIPE)
    try:
        env.send_task("r-term", {"page": 2}, partition=2, reply_partition=3)
        wait_for(lambda: marker.read_text().strip() == "r-term", 30, "the worker to start the task")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert rc == 0, proc.stderr.read().decode() if proc.stderr else rc
    got = env.read_results(3, 1)
    assert len(got) == 1 and json.loads(got[0].value()) == {"by": "proc", "page": 2}
    assert env.committed()[2] == 1


def test_sasl_scram(env: Env) -> None:
    sasl = os.environ.get("KAFKA_SASL_BROKERS") or "127.0.0.1:9096"
    w = Worker(brokers=sasl, prefix=env.prefix, sasl_mechanism="SCRAM-SHA-512", sasl_username="stepwise", sasl_password="stepwise-secret", commit_interval=0.2)
    w.handle("ocr", lambda task: {"secure": True})
    env.send_task("r-sasl", {}, reply_partition=0)
    r = Running(w)
    try:
        got = env.read_results(0, 1)
    finally:
        r.stop()
    assert len(got) == 1 and json.loads(got[0].value()) == {"secure": True}
