"""Prometheus metrics of a worker (prometheus_client), under the names the
Go SDK uses (docs/metrics.md). Off unless ``Worker(metrics=registry)``;
prometheus_client is needed only then (extra ``metrics``)."""

from __future__ import annotations

import re
import time
from typing import Any, Callable

# Buckets of the duration histograms, seconds, as the Go SDK's.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

_INDEX = re.compile(r"\[[^\]]*\]")


def step_label(path: str) -> str:
    """A step path without fan-out indexes: ``docs[3]/pages[0]/ocr`` is
    ``docs/pages/ocr``, so the label set stays bounded."""
    return _INDEX.sub("", path)


class WorkerMetrics:
    """The worker's metrics on one registry."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.tasks = Counter(
            "stepwise_worker_tasks", "Tasks handled, by outcome (succeeded, failed, retryable).",
            ["queue", "step", "outcome"], registry=registry,
        )
        self.duration = Histogram(
            "stepwise_worker_task_duration_seconds", "Time the handler ran.", ["queue", "step"],
            buckets=BUCKETS, registry=registry,
        )
        self.wait = Histogram(
            "stepwise_worker_queue_wait_seconds",
            "Time from a task's dispatch (its record's timestamp) to its handler's start.", ["queue"],
            buckets=BUCKETS, registry=registry,
        )
        self.in_flight = Gauge("stepwise_worker_tasks_in_flight", "Tasks whose handler is running.", ["queue"], registry=registry)

    def started(self, queue: str, step: str, dispatched: float | None) -> Callable[[str], None]:
        """Records a handler starting on a task dispatched at ``dispatched``
        (seconds since the epoch) and returns the function to call with the
        outcome when it ends."""
        start = time.monotonic()
        if dispatched:
            self.wait.labels(queue).observe(max(time.time() - dispatched, 0.0))
        g = self.in_flight.labels(queue)
        g.inc()
        label = step_label(step)

        def done(outcome: str) -> None:
            g.dec()
            self.duration.labels(queue, label).observe(time.monotonic() - start)
            self.tasks.labels(queue, label, outcome).inc()

        return done
