"""Loads the worker conformance vectors (schemas/vectors/worker.json) and
builds the handler each case asks for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from stepwise_worker import NonRetryableError, Task
from stepwise_worker.protocol import Record

VECTORS = Path(__file__).resolve().parents[3] / "schemas" / "vectors" / "worker.json"


def load_cases() -> list[dict[str, Any]]:
    return json.loads(VECTORS.read_text())["cases"]


def worker_id() -> str:
    """The id the vectors expect a worker to be configured with."""
    return str(json.loads(VECTORS.read_text())["workerId"])


def task_record(case: dict[str, Any], offset: int = 0) -> Record:
    t = case["task"]
    value = t["raw"].encode() if "raw" in t else json.dumps(t["value"]).encode()
    return Record(
        topic=t["topic"],
        partition=t["partition"],
        offset=offset,
        key=t["key"].encode(),
        value=value,
        headers=[(k, v.encode()) for k, v in t["headers"].items()],
    )


class Recorder:
    """The handler a case describes, counting its calls."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.calls = 0

    def __call__(self, task: Task) -> Any:
        self.calls += 1
        kind = self.spec["kind"]
        if kind == "echo":
            return task.input
        if kind == "return":
            return self.spec["value"]
        if kind == "return-nothing":
            return None
        if kind == "raise":
            if self.spec.get("retryable", True):
                raise RuntimeError(self.spec["message"])
            raise NonRetryableError(self.spec["message"])
        if kind == "describe":
            return {
                "request": task.request,
                "workflow": task.workflow,
                "step": task.step,
                "attempt": task.attempt,
                "instance": task.instance,
                "hasDeadline": task.deadline is not None,
                "input": task.input,
            }
        raise AssertionError(f"unknown handler kind {kind}")


def check_result(case: dict[str, Any], topic: str, partition: int, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
    """Compares one produced result with the case's expectation."""
    exp = case["expect"]
    assert topic == exp["topic"]
    assert partition == exp["partition"]
    assert key == exp["key"].encode()
    got_headers = [(k, v.decode()) for k, v in headers]
    assert len(got_headers) == len(dict(got_headers)), f"repeated headers: {got_headers}"
    assert dict(got_headers) == exp["headers"]
    body = json.loads(value or b"")
    if "value" in exp:
        assert body == exp["value"]
        # JSON value semantics: numbers keep their kind (1 is not 1.0 to a
        # reader that cares, and true is not 1).
        assert _typed(body) == _typed(exp["value"])
    else:
        err = exp["error"]
        assert set(body) == {"message", "retryable"}
        assert body["retryable"] is err["retryable"]
        assert err["messageContains"] in body["message"]


def _typed(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _typed(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_typed(x) for x in v]
    return (type(v).__name__, v)


Handler = Callable[[Task], Any]
