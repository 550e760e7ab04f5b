"""The Python workers answer as the Go handlers do.

testdata/golden.json holds the Go handlers' answers (written and checked by
golden_test.go); every case is replayed here. The bundled book is also
counted by an independent reference (regular expressions over the whole
text), and the four workers run end to end on the in-memory broker.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from book_split import book_split
from run import HANDLERS, register
from segment_word_counts import segment_word_counts
from store_title import store_title
from sum_splits import sum_splits
from wordcounts import book

from stepwise_worker import NonRetryableError, Worker
from stepwise_worker.memory import MemoryBroker

GOLDEN = json.loads((Path(__file__).parent / "testdata" / "golden.json").read_text())


def run(queue: str, msg: dict[str, Any]) -> dict[str, Any]:
    return HANDLERS[queue]("r-1:" + queue, json.loads(json.dumps(msg)))


def test_golden_covers_every_queue() -> None:
    assert {c["queue"] for c in GOLDEN} == set(HANDLERS)
    assert sum(1 for c in GOLDEN if c.get("error")) >= 5


@pytest.mark.parametrize("case", GOLDEN, ids=[f"{i}-{c['name']}" for i, c in enumerate(GOLDEN)])
def test_same_answer_as_go(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(Exception) as info:
            run(case["queue"], case["input"])
        assert isinstance(info.value, NonRetryableError) is (not case.get("retryable", False))
        return
    assert run(case["queue"], case["input"]) == case["output"]


def test_bundled_book_against_reference_count() -> None:
    text = book()
    heads = list(re.finditer(r"(?m)^CHAPTER [IVXLCDM]+\.[ \t\r]*$", text))
    want: Counter[str] = Counter()
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        want.update(re.findall(r"[^\W_]+(?:['’][^\W_]+)*", text[m.end() : end].lower()))
    sections = book_split("r-1:book-split", {})["sections"]
    counted = [segment_word_counts("r-1:segment-word-counts", {"section": s})["section"] for s in sections]
    total = sum_splits("r-1:sum-splits", {"sections": counted})
    assert total["chapters"] == len(heads) > 1
    assert total["total_words"] == sum(want.values())
    top = sorted(want.items(), key=lambda wc: (-wc[1], wc[0]))[:10]
    assert total["top_words"] == [[w, c] for w, c in top]
    assert store_title("r-1:store-title", {}) == {"title": "The Keeper of Harrow Light"}


def test_workflow_on_memory_broker() -> None:
    """The four workers on one Worker, driven as a processor would: each
    step's output feeds the next step's task."""
    broker = MemoryBroker()
    for q in HANDLERS:
        broker.create_topic(f"stepwise.tasks.{q}")
    broker.create_topic("stepwise.results", partitions=2)
    w = Worker(transport=broker, commit_interval=0.05)
    register(w, concurrency=4)
    t = threading.Thread(target=w.run, kwargs={"install_signal_handlers": False})
    t.start()
    sent = 0

    def ask(queue: str, step: str, msg: dict[str, Any]) -> dict[str, Any]:
        nonlocal sent
        headers = {
            "stepwise-request": "r-1",
            "stepwise-workflow": "book-word-counts",
            "stepwise-step": step,
            "stepwise-attempt": "1",
            "stepwise-instance": "r-1",
            "stepwise-reply-topic": "stepwise.results",
            "stepwise-reply-partition": "1",
        }
        broker.append(f"stepwise.tasks.{queue}", 0, b"r-1", json.dumps(msg).encode(), [(k, v.encode()) for k, v in headers.items()])
        sent += 1
        n = sent
        assert broker.wait(lambda: len(broker.records("stepwise.results", 1)) >= n, 10)
        res = broker.records("stepwise.results", 1)[n - 1]
        assert res.header("stepwise-step") == step and res.header("stepwise-status") == "ok"
        return json.loads(res.value or b"")

    try:
        sections = ask("book-split", "book-split", {})["sections"]
        counted = [ask("segment-word-counts", f"section-counts[{i}]/segment-word-counts", {"section": s})["section"] for i, s in enumerate(sections)]
        summary = ask("sum-splits", "sum-splits", {"sections": counted})
        title = ask("store-title", "store-title", {})
    finally:
        w.stop()
        t.join(10)
    assert summary == sum_splits("", {"sections": counted})
    assert summary["chapters"] == len(sections)
    assert title == {"title": "The Keeper of Harrow Light"}
