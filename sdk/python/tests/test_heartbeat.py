"""Heartbeats: a task that asks for them gets them while its handler runs,
every interval and when the handler calls task.heartbeat; others none."""

from __future__ import annotations

import json
import threading
import time

from stepwise_worker import Task, Worker
from stepwise_worker.memory import MemoryBroker

TASKS = "stepwise.tasks.q"
RESULTS = "stepwise.results"
GROUP = "stepwise.workers.q"


def task_headers(request: str, interval_ms: str | None) -> list[tuple[str, bytes]]:
    h = {
        "stepwise-request": request,
        "stepwise-workflow": "wf",
        "stepwise-step": "ocr",
        "stepwise-attempt": "1",
        "stepwise-instance": request,
        "stepwise-reply-topic": RESULTS,
        "stepwise-reply-partition": "0",
    }
    if interval_ms is not None:
        h["stepwise-heartbeat-interval"] = interval_ms
    return [(k, v.encode()) for k, v in h.items()]


def run_one(interval_ms: str | None, handler) -> list:
    b = MemoryBroker()
    b.create_topic(TASKS, 1)
    b.create_topic(RESULTS, 1)
    b.append(TASKS, 0, b"hb-1", b'{"n": 1}', task_headers("hb-1", interval_ms))
    w = Worker(transport=b, commit_interval=0.05)
    w.handle("q", handler)
    t = threading.Thread(target=w.run, kwargs={"install_signal_handlers": False})
    t.start()
    assert b.wait(lambda: b.committed.get((GROUP, TASKS, 0)) == 1, 10)
    w.stop()
    t.join(10)
    return b.records(RESULTS)


def test_heartbeats_while_the_handler_runs() -> None:
    seen: list[float] = []

    def slow(task: Task) -> dict:
        seen.append(task.heartbeat_interval)
        time.sleep(0.3)
        task.heartbeat({"page": 2})
        time.sleep(0.3)
        return {"done": True}

    recs = run_one("50", slow)
    statuses = [r.header("stepwise-status") for r in recs]
    assert seen == [0.05]
    assert statuses[-1] == "ok" and statuses.count("ok") == 1
    beats = [json.loads(r.value or b"") for r in recs if r.header("stepwise-status") == "heartbeat"]
    # About 12 automatic beats at 50ms in 600ms; the machine's load may
    # stretch the ticks, so only their presence is checked.
    assert len(beats) >= 3, statuses
    assert beats[0] == {}
    assert {"details": {"page": 2}} in beats
    assert beats[-1] == {"details": {"page": 2}}  # later automatic beats repeat the details
    for r in recs:
        assert r.partition == 0 and r.header("stepwise-request") == "hb-1" and r.header("stepwise-attempt") == "1"


def test_no_heartbeats_without_the_header() -> None:
    def quick(task: Task) -> dict:
        assert task.heartbeat_interval == 0
        task.heartbeat({"ignored": 1})  # does nothing
        time.sleep(0.1)
        return {}

    recs = run_one(None, quick)
    assert [r.header("stepwise-status") for r in recs] == ["ok"]


def test_async_handler_gets_heartbeats() -> None:
    import asyncio

    async def slow(task: Task) -> dict:
        await asyncio.sleep(0.3)
        return {}

    recs = run_one("50", slow)
    statuses = [r.header("stepwise-status") for r in recs]
    assert statuses[-1] == "ok" and statuses.count("heartbeat") >= 2, statuses
