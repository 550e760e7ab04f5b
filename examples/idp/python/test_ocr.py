"""The Python OCR worker answers as the Go ocr handler does.

testdata/golden.json holds the Go handler's answers (written and checked by
golden_test.go): every page of the default bundle as render gives it, odd
pages, and inputs that must fail. Every case is replayed here through the
SDK's record handling, so the headers and the error result are checked
too, and the worker runs end to end on the SDK's in-memory broker.
"""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from ocr import QUEUE, checksum, latency_from_env, make_handler, ocr, parse_go_duration

from stepwise_worker import NonRetryableError, Record, Worker, handle_record
from stepwise_worker.memory import MemoryBroker

GOLDEN = json.loads((Path(__file__).parent / "testdata" / "golden.json").read_text())

HEADERS = {
    "stepwise-request": "r-1",
    "stepwise-workflow": "idp",
    "stepwise-step": "documents[0]/pages[1]/ocr",
    "stepwise-attempt": "1",
    "stepwise-instance": "r-1",
    "stepwise-reply-topic": "stepwise.results",
    "stepwise-reply-partition": "1",
}


def test_golden_covers_the_default_bundle_and_failures() -> None:
    assert {c["queue"] for c in GOLDEN} == {QUEUE}
    assert sum(1 for c in GOLDEN if c["name"].startswith("default bundle: ")) == 7
    assert sum(1 for c in GOLDEN if c.get("error")) >= 10


@pytest.mark.parametrize("case", GOLDEN, ids=[f"{i}-{c['name']}" for i, c in enumerate(GOLDEN)])
def test_same_answer_as_go(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(NonRetryableError):
            ocr(case["input"])
        return
    assert ocr(case["input"]) == case["output"]


@pytest.mark.parametrize("case", GOLDEN, ids=[f"{i}-{c['name']}" for i, c in enumerate(GOLDEN)])
def test_same_result_record_as_go(case: dict[str, Any]) -> None:
    rec = Record(
        topic="stepwise.tasks.ocr",
        partition=0,
        offset=7,
        key=b"r-1",
        value=json.dumps(case["input"]).encode(),
        headers=[(k, v.encode()) for k, v in HEADERS.items()],
    )
    res = handle_record(rec, make_handler(0), QUEUE)
    assert res is not None
    assert (res.topic, res.partition, res.key) == ("stepwise.results", 1, b"r-1")
    body = json.loads(res.value)
    if case.get("error"):
        assert res.status == "error"
        assert body["retryable"] is False and body["message"].startswith("stepwise: idp: ")
    else:
        assert res.status == "ok"
        assert body == case["output"]


def test_checksum_is_gos() -> None:
    # Go's idp.Checksum of the same text, as the golden file holds it.
    page = next(c for c in GOLDEN if c["name"] == "odd pages: odd.pdf page 2")["input"]["page"]
    assert checksum(base64.b64decode(page["image"])) == page["checksum"]
    assert len(page["checksum"]) == 16


def test_go_durations() -> None:
    assert parse_go_duration("0") == 0
    assert parse_go_duration("5ms") == pytest.approx(0.005)
    assert parse_go_duration("1m30s") == pytest.approx(90)
    assert parse_go_duration("1.5s") == pytest.approx(1.5)
    for bad in ("", "5", "-5ms", "soon", "5 ms"):
        assert parse_go_duration(bad) is None, bad
    assert latency_from_env({}) == (0.005, None)
    assert latency_from_env({"STEPWISE_IDP_LATENCY": "20ms"}) == (pytest.approx(0.02), None)
    d, complaint = latency_from_env({"STEPWISE_IDP_LATENCY": "soon"})
    assert d == 0.005 and complaint is not None and "STEPWISE_IDP_LATENCY" in complaint


def test_worker_on_memory_broker() -> None:
    """Every default-bundle page through a running Worker, as a processor
    would send them, with the example's latency on."""
    pages = [c for c in GOLDEN if c["name"].startswith("default bundle: ")]
    broker = MemoryBroker()
    broker.create_topic("stepwise.tasks.ocr", partitions=2)
    broker.create_topic("stepwise.results", partitions=2)
    w = Worker(transport=broker, commit_interval=0.05)
    w.handle(QUEUE, make_handler(0.002), concurrency=4)
    t = threading.Thread(target=w.run, kwargs={"install_signal_handlers": False})
    t.start()
    try:
        for i, c in enumerate(pages):
            headers = {**HEADERS, "stepwise-step": f"documents[0]/pages[{i}]/ocr"}
            broker.append("stepwise.tasks.ocr", i % 2, b"r-1", json.dumps(c["input"]).encode(), [(k, v.encode()) for k, v in headers.items()])
        assert broker.wait(lambda: len(broker.records("stepwise.results", 1)) >= len(pages), 10)
    finally:
        w.stop()
        t.join(10)
    got = {r.header("stepwise-step"): json.loads(r.value or b"") for r in broker.records("stepwise.results", 1)}
    assert got == {f"documents[0]/pages[{i}]/ocr": c["output"] for i, c in enumerate(pages)}
