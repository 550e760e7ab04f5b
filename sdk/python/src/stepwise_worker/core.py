"""The message-handling core: read a task, run the handler, build the result.

Pure apart from calling the handler: no Kafka, no threads. The worker's
runtime (worker.py) calls prepare, then the handler (on a thread for a plain
function, on an event loop for an ``async def``), then answer; handle_record
does all three at once for tests and for checking a handler in isolation.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Union

from .errors import ConfigError, NonRetryableError
from .protocol import (
    DEFAULT_MAX_RESULT_BYTES,
    MalformedTaskError,
    NoReplyError,
    Record,
    Reply,
    ResultRecord,
    Task,
    encode_output,
    format_rfc3339,
    header_map,
    parse_reply,
    parse_task,
)

TaskHandler = Callable[[Task], Any]
"""``handler(task) -> dict | None``, or an ``async def`` of that shape."""

LegacyHandler = Callable[[str, dict[str, Any]], Any]
"""``handler(correlation_id, msg) -> dict``: the original workflow manager's
shape, where correlation_id is ``<instance id>:<step name>`` and msg the
step's input."""

HandlerFunc = Union[TaskHandler, LegacyHandler]


@dataclass(frozen=True)
class Handler:
    """A registered handler and how to call it."""

    fn: Callable[..., Any]
    is_async: bool
    legacy: bool  # called as fn(correlation_id, msg)
    name: str

    def args(self, task: Task) -> tuple[Any, ...]:
        if self.legacy:
            return (task.correlation_id, task.input)
        return (task,)


def adapt(fn: Callable[..., Any]) -> Handler:
    """Inspects fn once: a function of one required positional parameter
    gets the Task; one of two gets ``(correlation_id, msg)``. Raises
    ConfigError for anything else."""
    if not callable(fn):
        raise ConfigError(f"stepwise: handler {fn!r} is not callable")
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"stepwise: cannot inspect handler {fn!r}: {exc}") from exc
    required = 0
    variadic = False
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            required += 1
        elif p.kind is p.VAR_POSITIONAL:
            variadic = True
        elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            raise ConfigError(f"stepwise: handler {fn!r} has a required keyword-only parameter {p.name!r}")
    if required == 0 and variadic:
        required = 1
    if required not in (1, 2):
        raise ConfigError(
            f"stepwise: handler {fn!r} takes {required} required positional parameters; "
            "want handler(task) or handler(correlation_id, msg)"
        )
    is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return Handler(fn=fn, is_async=is_async, legacy=required == 2, name=name)


@dataclass(frozen=True)
class Prepared:
    """What to do with one task record.

    Exactly one of these holds: ``reply is None`` (nothing can be answered:
    log ``problem`` and commit); ``result is not None`` (answer it without
    running the handler); otherwise run the handler on ``task``.
    """

    reply: Reply | None
    task: Task | None
    result: ResultRecord | None
    problem: str = ""


def prepare(
    rec: Record, queue: str, now: datetime | None = None, cancelled: threading.Event | None = None, worker_id: str = ""
) -> Prepared:
    """Reads a task record and decides whether the handler runs.
    ``cancelled`` becomes the task's cancellation flag; ``worker_id`` is
    sent on the result."""
    h = header_map(rec.headers)
    try:
        reply = parse_reply(h, worker_id)
    except NoReplyError as exc:
        return Prepared(reply=None, task=None, result=None, problem=str(exc))
    try:
        task = parse_task(rec, h, queue, cancelled)
    except MalformedTaskError as exc:
        return Prepared(reply=reply, task=None, result=reply.failure(str(exc), False), problem=str(exc))
    now = now or datetime.now(timezone.utc)
    if task.deadline is not None and now >= task.deadline:
        msg = f"stepwise: deadline {format_rfc3339(task.deadline)} passed before the task started"
        return Prepared(reply=reply, task=task, result=reply.failure(msg, True), problem=msg)
    return Prepared(reply=reply, task=task, result=None)


def error_message(exc: BaseException) -> str:
    """The message an exception reports in an error result."""
    return str(exc) or type(exc).__name__


def answer(
    reply: Reply,
    output: Any = None,
    error: BaseException | None = None,
    max_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> ResultRecord:
    """Turns a handler's outcome into the result record."""
    if error is not None:
        return reply.failure(error_message(error), not isinstance(error, NonRetryableError))
    ok, body, retryable = encode_output(output, max_bytes)
    if not ok:
        assert isinstance(body, str)
        return reply.failure(body, retryable)
    assert isinstance(body, bytes)
    return reply.ok(body)


class DeadlineExceeded(Exception):
    """An ``async def`` handler was still running at the task's deadline."""


def call_sync(handler: Handler, task: Task) -> tuple[Any, Exception | None]:
    """Runs a plain-function handler; returns ``(output, error)``."""
    try:
        out = handler.fn(*handler.args(task))
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result
        return None, exc
    if inspect.isawaitable(out):
        # A plain function that returned an awaitable (a partial of an
        # async function, say): run it here, on this thread.
        return _run_awaitable(out, task)
    return out, None


def _run_awaitable(aw: Awaitable[Any], task: Task) -> tuple[Any, Exception | None]:
    async def main() -> Any:
        return await aw

    try:
        return asyncio.run(_with_deadline(main(), task)), None
    except Exception as exc:  # noqa: BLE001
        return None, exc


async def _with_deadline(coro: Awaitable[Any], task: Task) -> Any:
    if task.deadline is None:
        return await coro
    left = (task.deadline - datetime.now(timezone.utc)).total_seconds()
    try:
        return await asyncio.wait_for(coro, timeout=max(left, 0.0))
    except asyncio.TimeoutError:
        raise DeadlineExceeded(f"stepwise: deadline {format_rfc3339(task.deadline)} exceeded") from None


async def call_async(handler: Handler, task: Task) -> tuple[Any, Exception | None]:
    """Runs an ``async def`` handler, cancelled at the task's deadline (a
    retryable failure); returns ``(output, error)``."""
    try:
        out = await _with_deadline(handler.fn(*handler.args(task)), task)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result
        return None, exc
    return out, None


def handle_record(
    rec: Record,
    fn: Callable[..., Any] | Handler,
    queue: str = "",
    now: datetime | None = None,
    max_bytes: int = DEFAULT_MAX_RESULT_BYTES,
    worker_id: str = "",
) -> ResultRecord | None:
    """Answers one task record synchronously: the result to produce, or None
    when the task names no reply. For tests and tools; the worker runs the
    same steps concurrently."""
    handler = fn if isinstance(fn, Handler) else adapt(fn)
    p = prepare(rec, queue, now, worker_id=worker_id)
    if p.reply is None:
        return None
    if p.result is not None:
        return p.result
    assert p.task is not None
    if handler.is_async:
        out, err = asyncio.run(call_async(handler, p.task))
    else:
        out, err = call_sync(handler, p.task)
    return answer(p.reply, out, err, max_bytes)
