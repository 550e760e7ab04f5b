"""OpenTelemetry tracing of a worker (opentelemetry-api), as the Go SDK
does it (schemas/PROTOCOL.md, "Tracing"): a consumer span per handler call,
child of the task's ``traceparent`` (the processor's span of the step
attempt), current while the handler runs so that its own spans join the
request's trace; the result carries the span's ``traceparent`` back. Off
unless ``Worker(tracing=...)``; opentelemetry-api is needed only then (extra
``tracing``). Exporting is the program's part (an OpenTelemetry SDK set up as
usual, e.g. from the OTEL_* environment)."""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from typing import Any, Iterator

from .protocol import ResultRecord, Task

HEADER_TRACEPARENT = "traceparent"
SCOPE = "github.com/stepwise-run/stepwise"

# Span attribute keys, the same in every SDK.
KEY_REQUEST = "stepwise.request"
KEY_WORKFLOW = "stepwise.workflow"
KEY_STEP = "stepwise.step"
KEY_ATTEMPT = "stepwise.attempt"
KEY_QUEUE = "stepwise.queue"
KEY_WORKER = "stepwise.worker"
KEY_OUTCOME = "stepwise.outcome"


class WorkerTracing:
    """Starts and ends the handler spans of one worker."""

    def __init__(self, provider: Any = None, worker_id: str = "") -> None:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self._tracer = trace.get_tracer(SCOPE, tracer_provider=provider)
        self.worker_id = worker_id or f"{socket.gethostname()}/{os.getpid()}"

    @contextmanager
    def span(self, task: Task) -> Iterator[Any]:
        """The handler span of ``task``, current inside the block. End it
        with ``end``."""
        parent = self._propagator.extract({HEADER_TRACEPARENT: task.headers.get(HEADER_TRACEPARENT, "")})
        span = self._tracer.start_span(
            f"handle {task.step}",
            context=parent,
            kind=self._trace.SpanKind.CONSUMER,
            attributes={
                KEY_REQUEST: task.request, KEY_WORKFLOW: task.workflow, KEY_STEP: task.step,
                KEY_ATTEMPT: task.attempt, KEY_QUEUE: task.queue, KEY_WORKER: self.worker_id,
            },
        )
        with self._trace.use_span(span, end_on_exit=False):
            yield span

    def end(self, span: Any, outcome: str, res: ResultRecord | None) -> None:
        """Ends ``span`` with ``outcome``; puts its traceparent on ``res``."""
        span.set_attribute(KEY_OUTCOME, outcome)
        if outcome != "succeeded":
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, outcome))
        if res is not None:
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
            if HEADER_TRACEPARENT in carrier:
                res.headers.append((HEADER_TRACEPARENT, carrier[HEADER_TRACEPARENT].encode()))
        span.end()
