"""Replays schemas/vectors/worker.json against the pure core (handle_record)
and against the whole worker runtime on the in-memory broker."""

from __future__ import annotations

import threading

import pytest

from stepwise_worker import Worker, handle_record
from stepwise_worker.memory import MemoryBroker

from .vectors import Recorder, check_result, load_cases, task_record, worker_id

CASES = load_cases()
IDS = [c["name"] for c in CASES]


def test_vectors_are_loaded() -> None:
    # The file has both kinds of expectation; a loader bug must not turn
    # every case below into nothing.
    assert len(CASES) >= 16
    assert any(c["expect"] is None for c in CASES)
    assert any(c["expect"] and "error" in c["expect"] for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_core(case: dict) -> None:
    handler = Recorder(case["handler"])
    res = handle_record(task_record(case), handler, queue="ocr", worker_id=worker_id())
    assert handler.calls == (1 if case.get("handlerCalled", True) else 0)
    if case["expect"] is None:
        assert res is None
        return
    assert res is not None
    check_result(case, res.topic, res.partition, res.key, res.value, res.headers)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_core_async_handler(case: dict) -> None:
    rec = Recorder(case["handler"])

    async def handler(task):  # type: ignore[no-untyped-def]
        return rec(task)

    res = handle_record(task_record(case), handler, queue="ocr", worker_id=worker_id())
    assert rec.calls == (1 if case.get("handlerCalled", True) else 0)
    if case["expect"] is None:
        assert res is None
    else:
        assert res is not None
        check_result(case, res.topic, res.partition, res.key, res.value, res.headers)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_worker_on_memory_broker(case: dict) -> None:
    """The runtime produces exactly the vector's record (or none) and
    commits the task's offset either way."""
    broker = MemoryBroker()
    t = case["task"]
    broker.create_topic(t["topic"], partitions=t["partition"] + 1)
    broker.create_topic("stepwise.results", partitions=12)
    # A record before the case's own, so the commit must pass two offsets.
    broker.append(t["topic"], t["partition"], b"other", b"{}", [])
    rec = task_record(case)
    broker.append(rec.topic, rec.partition, rec.key, rec.value, list(rec.headers))

    handler = Recorder(case["handler"])
    w = Worker(transport=broker, commit_interval=0.05, worker_id=worker_id())
    w.handle("ocr", handler, concurrency=2)
    runner = threading.Thread(target=w.run, kwargs={"install_signal_handlers": False})
    runner.start()
    try:
        group = "stepwise.workers.ocr"
        assert broker.wait(lambda: broker.committed.get((group, t["topic"], t["partition"])) == 2, 10), "offset not committed"
    finally:
        w.stop()
        runner.join(10)
    assert not runner.is_alive()
    assert handler.calls == (1 if case.get("handlerCalled", True) else 0)
    results = broker.records("stepwise.results")
    if case["expect"] is None:
        assert results == []
        return
    assert len(results) == 1
    r = results[0]
    check_result(case, r.topic, r.partition, r.key, r.value, r.headers)
