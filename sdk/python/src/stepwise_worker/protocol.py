"""The wire protocol between processors and workers, without any I/O.

A task record arrives on ``<prefix>tasks.<queue>``: its value is the step's
input (a JSON object), its headers carry the correlation. The answer is one
result record on the topic and partition the task names, with the
correlation headers copied verbatim and ``stepwise-status`` saying how to
read the value. schemas/PROTOCOL.md in the repository is the source of
truth; this module follows the Go SDK (worker/task.go, worker/worker.go)
case for case, and tests replay schemas/vectors/worker.json against it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping, Sequence

# Header names (schemas/headers.schema.json). Every value is a UTF-8 string.
HEADER_REQUEST = "stepwise-request"
HEADER_WORKFLOW = "stepwise-workflow"
HEADER_STEP = "stepwise-step"
HEADER_ATTEMPT = "stepwise-attempt"
HEADER_INSTANCE = "stepwise-instance"
HEADER_REPLY_TOPIC = "stepwise-reply-topic"
HEADER_REPLY_PARTITION = "stepwise-reply-partition"
HEADER_DEADLINE = "stepwise-deadline"
HEADER_STATUS = "stepwise-status"
# The id of the worker instance that answers (results; optional): kept in
# the step's history.
HEADER_WORKER = "stepwise-worker"
# Optional on a task: send a heartbeat every this many milliseconds while
# the handler runs (PROTOCOL.md, Heartbeats).
HEADER_HEARTBEAT = "stepwise-heartbeat-interval"
# A record of a task topic with this header is a control message, not a
# task: CONTROL_CANCEL stops the task of the same request, step and attempt.
HEADER_CONTROL = "stepwise-control"
CONTROL_CANCEL = "cancel"

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_HEARTBEAT = "heartbeat"  # not a result: the attempt is alive

DEFAULT_PREFIX = "stepwise."
DEFAULT_MAX_RESULT_BYTES = 1 << 20  # Kafka's default max.message.bytes

# Header values are decoded so that encoding them again gives the same bytes,
# even when they are not valid UTF-8: headers are copied verbatim.
_HEADER_CODEC = ("utf-8", "surrogateescape")


def tasks_topic(prefix: str, queue: str) -> str:
    """The topic the workers of ``queue`` consume."""
    return f"{prefix}tasks.{queue}"


def group_name(stem: str, queue: str) -> str:
    """The consumer group of ``queue``'s workers, given the group stem
    (``<prefix>workers`` unless configured)."""
    return f"{stem}.{queue}"


@dataclass(frozen=True)
class Record:
    """A consumed task record, independent of the Kafka client."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes | None]] = ()
    timestamp: float | None = None  # the record's time (its dispatch), seconds since the epoch


@dataclass(frozen=True)
class ResultRecord:
    """A result record to produce: to ``topic``, exactly ``partition``."""

    topic: str
    partition: int
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]

    @property
    def status(self) -> str:
        """The ``stepwise-status`` header."""
        for name, value in self.headers:
            if name == HEADER_STATUS:
                return value.decode()
        return ""


@dataclass(frozen=True)
class Task:
    """One attempt of one step, as delivered to a handler.

    ``input`` is the step's input, a JSON object: the merge of the outputs
    of the steps it depends on. ``headers`` holds every header of the task
    record, Stepwise's and any other (tracing, for instance); a repeated
    header keeps its last value.
    """

    request: str
    workflow: str
    step: str  # "ocr", or "docs[1]/pages[7]/ocr" inside fan-outs
    attempt: int  # from 1
    instance: str  # the request id, or the fan-out child's id
    deadline: datetime | None  # aware UTC datetime; None without a timeout
    input: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    queue: str = ""
    # Where the task was read from, for logs.
    topic: str = ""
    partition: int = 0
    offset: int = 0
    # Set when the request was cancelled (or failed elsewhere) while the
    # handler ran: the handler should stop; whatever it returns is dropped,
    # since no result is wanted any more. Poll ``cancelled.is_set()`` or
    # wait on it.
    cancelled: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    # Seconds between heartbeats the task asks for; 0 when its step has no
    # heartbeat timeout. The worker sends them while the handler runs.
    heartbeat_interval: float = 0.0
    beats: "Heartbeats" = field(default_factory=lambda: Heartbeats(), compare=False, repr=False)

    def heartbeat(self, details: dict[str, Any] | None = None) -> None:
        """Tells the processors the task is alive now, with ``details`` (a
        dict that encodes to JSON; kept, up to 4 KiB, in the request's
        state, and repeated by the automatic heartbeats after it). Does
        nothing for a task whose step has no heartbeat timeout."""
        if details is not None and not isinstance(details, dict):
            raise TypeError(f"stepwise: heartbeat details must be a dict, got {type(details).__name__}")
        if self.heartbeat_interval > 0:
            self.beats.beat(details, keep=True)

    @property
    def step_name(self) -> str:
        """The step's own name: the last segment of its path."""
        return self.step.rsplit("/", 1)[-1]

    @property
    def correlation_id(self) -> str:
        """``<instance id>:<step name>``, the correlation id handlers of the
        original workflow manager received."""
        return f"{self.instance}:{self.step_name}"


class Heartbeats:
    """The heartbeats of one running task: the last details given and the
    function that sends one (set by the worker while the handler runs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._details: dict[str, Any] | None = None
        self.send: Any = None  # Callable[[dict | None], None]

    def beat(self, details: dict[str, Any] | None = None, keep: bool = False) -> None:
        with self._lock:
            if keep:
                self._details = details
            details = self._details
            send = self.send
        if send is not None:
            send(details)


def control_key(rec: Record) -> str | None:
    """The task key (request, step, attempt) a cancel control message is
    about, or None when ``rec`` is a task."""
    h = header_map(rec.headers)
    if h.get(HEADER_CONTROL) != CONTROL_CANCEL:
        return None
    return task_key(h.get(HEADER_REQUEST, ""), h.get(HEADER_STEP, ""), h.get(HEADER_ATTEMPT, ""))


def task_key(request: str, step: str, attempt: str) -> str:
    """Identifies one attempt of one step of one request."""
    return f"{request}\x00{step}\x00{attempt}"


def record_task_key(rec: Record) -> str:
    """The task key of a task record."""
    h = header_map(rec.headers)
    return task_key(h.get(HEADER_REQUEST, ""), h.get(HEADER_STEP, ""), h.get(HEADER_ATTEMPT, ""))


@dataclass(frozen=True)
class Reply:
    """Where and under which correlation a result goes. A task that does not
    name all of it cannot be answered."""

    topic: str
    partition: int
    request: str
    step: str
    attempt: str  # copied verbatim, even when unparsable
    worker: str = ""  # this worker's id (HEADER_WORKER); none sent when empty

    def record(self, status: str, value: bytes) -> ResultRecord:
        def enc(s: str) -> bytes:
            return s.encode(*_HEADER_CODEC)

        headers = [
            (HEADER_REQUEST, enc(self.request)),
            (HEADER_STEP, enc(self.step)),
            (HEADER_ATTEMPT, enc(self.attempt)),
            (HEADER_STATUS, status.encode()),
        ]
        if self.worker:
            headers.append((HEADER_WORKER, enc(self.worker)))
        return ResultRecord(topic=self.topic, partition=self.partition, key=enc(self.request), value=value, headers=headers)

    def ok(self, output: bytes) -> ResultRecord:
        """A successful result whose value is ``output`` (a JSON object)."""
        return self.record(STATUS_OK, output)

    def failure(self, message: str, retryable: bool) -> ResultRecord:
        """An error result."""
        body = json.dumps({"message": message, "retryable": retryable}, ensure_ascii=False)
        return self.record(STATUS_ERROR, body.encode("utf-8", "surrogatepass"))

    def heartbeat(self, details: dict[str, Any] | None = None) -> ResultRecord:
        """A heartbeat (heartbeat.schema.json): ``{}`` or ``{"details": ...}``."""
        body = "{}" if details is None else json.dumps({"details": details}, ensure_ascii=False)
        return self.record(STATUS_HEARTBEAT, body.encode("utf-8", "surrogatepass"))


class NoReplyError(ValueError):
    """The task names no usable reply: it is dropped (logged, committed)
    without a result."""


class MalformedTaskError(ValueError):
    """The task names its reply but cannot be read; it is answered with a
    non-retryable error and the handler does not run."""


# Go's strconv.Atoi/ParseInt accept an optional sign and decimal digits only.
_INTEGER = re.compile(r"[+-]?[0-9]+\Z")
# Go's time.Parse(time.RFC3339Nano, s): upper-case T and Z, optional fraction.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})\Z"
)
_INT32_MAX = (1 << 31) - 1
_INT64_MAX = (1 << 63) - 1


def _parse_int(s: str, limit: int) -> int | None:
    if not _INTEGER.match(s):
        return None
    n = int(s)
    if n > limit or n < -limit - 1:
        return None
    return n


def parse_rfc3339(s: str) -> datetime | None:
    """Parses an RFC 3339 time as Go's time.RFC3339Nano layout does; None
    when it is not one. The result is aware and in UTC (sub-microsecond
    digits are dropped)."""
    m = _RFC3339.match(s)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or "", m.group(8)
    try:
        if zone == "Z":
            tz = timezone.utc
        else:
            hh, mm = int(zone[1:3]), int(zone[4:6])
            if hh > 23 or mm > 59:
                return None
            off = timedelta(hours=hh, minutes=mm)
            tz = timezone(-off if zone[0] == "-" else off)
        micro = int((frac + "000000")[:6])
        t = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return None
    return t.astimezone(timezone.utc)


def format_rfc3339(t: datetime) -> str:
    """Formats an aware time as RFC 3339 in UTC, as Go's RFC3339Nano does
    (no trailing zeros in the fraction)."""
    t = t.astimezone(timezone.utc)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += ("." + f"{t.microsecond:06d}").rstrip("0")
    return s + "Z"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(b: bytes) -> Any:
    """Parses strict JSON (no NaN or Infinity, as Go's encoding/json). Raises
    ValueError when b is not JSON."""
    text = b.decode("utf-8", "replace")
    return json.loads(text, parse_constant=_reject_constant)


def describe(value: Any) -> str:
    """Names what kind of JSON value ``value`` is, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def _describe_raw(b: bytes | None) -> str:
    if not b or not b.strip(b" \t\r\n"):
        return "empty"
    try:
        return describe(decode_json(b))
    except ValueError:
        return "not JSON"


def header_map(headers: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """The record's headers by name; a repeated header keeps its last value."""
    out: dict[str, str] = {}
    for name, value in headers or ():
        out[name] = (value or b"").decode(*_HEADER_CODEC)
    return out


def parse_reply(h: Mapping[str, str], worker: str = "") -> Reply:
    """Reads where the answer to a task goes; ``worker`` is the id the
    answer carries. Raises NoReplyError when the task does not say."""
    topic = h.get(HEADER_REPLY_TOPIC, "")
    raw_partition = h.get(HEADER_REPLY_PARTITION, "")
    request = h.get(HEADER_REQUEST, "")
    step = h.get(HEADER_STEP, "")
    attempt = h.get(HEADER_ATTEMPT, "")
    partition = _parse_int(raw_partition, _INT32_MAX)
    if topic == "":
        raise NoReplyError(f"stepwise: task has no usable reply headers; dropped without a result: missing {HEADER_REPLY_TOPIC}")
    if partition is None or partition < 0:
        raise NoReplyError(
            f"stepwise: task has no usable reply headers; dropped without a result: "
            f"{HEADER_REPLY_PARTITION} {json.dumps(raw_partition)} is not a partition number"
        )
    if request == "" or step == "" or attempt == "":
        raise NoReplyError(
            f"stepwise: task has no usable reply headers; dropped without a result: "
            f"missing one of {HEADER_REQUEST}, {HEADER_STEP}, {HEADER_ATTEMPT}"
        )
    return Reply(topic=topic, partition=partition, request=request, step=step, attempt=attempt, worker=worker)


def default_worker_id() -> str:
    """The worker id used unless one is given: "<host>/<pid>", which names
    the process an attempt ran in (as every SDK does)."""
    return f"{socket.gethostname() or 'unknown-host'}/{os.getpid()}"


def parse_task(rec: Record, h: Mapping[str, str], queue: str, cancelled: threading.Event | None = None) -> Task:
    """Reads a task whose reply is known. Raises MalformedTaskError when a
    header or the value cannot be read."""
    attempt_raw = h.get(HEADER_ATTEMPT, "")
    attempt = _parse_int(attempt_raw, _INT64_MAX)
    if attempt is None or attempt < 1:
        raise MalformedTaskError(
            f"stepwise: malformed task: {HEADER_ATTEMPT} {json.dumps(attempt_raw)} is not an attempt number"
        )
    deadline = None
    if HEADER_DEADLINE in h:
        deadline = parse_rfc3339(h[HEADER_DEADLINE])
        if deadline is None:
            raise MalformedTaskError(
                f"stepwise: malformed task: {HEADER_DEADLINE} {json.dumps(h[HEADER_DEADLINE])} is not an RFC 3339 time"
            )
    try:
        value = decode_json(rec.value or b"")
    except ValueError:
        value = None
        kind = _describe_raw(rec.value)
    else:
        kind = describe(value)
    if not isinstance(value, dict):
        raise MalformedTaskError(f"stepwise: malformed task: the value is not a JSON object ({kind})")
    return Task(
        request=h.get(HEADER_REQUEST, ""),
        workflow=h.get(HEADER_WORKFLOW, ""),
        step=h.get(HEADER_STEP, ""),
        attempt=attempt,
        instance=h.get(HEADER_INSTANCE, ""),
        deadline=deadline,
        input=value,
        headers=dict(h),
        queue=queue,
        topic=rec.topic,
        partition=rec.partition,
        offset=rec.offset,
        cancelled=cancelled if cancelled is not None else threading.Event(),
        heartbeat_interval=_heartbeat_interval(h),
    )


def _heartbeat_interval(h: Mapping[str, str]) -> float:
    """The task's stepwise-heartbeat-interval in seconds; 0 when absent or
    unreadable (a task is never refused for it)."""
    ms = _parse_int(h.get(HEADER_HEARTBEAT, ""), _INT64_MAX)
    return ms / 1000.0 if ms is not None and ms > 0 else 0.0


def encode_output(output: Any, max_bytes: int = DEFAULT_MAX_RESULT_BYTES) -> tuple[bool, bytes | str, bool]:
    """Encodes a handler's return value as a step output.

    Returns ``(True, bytes, _)`` for a valid output, else ``(False, message,
    retryable)``: None means ``{}``; anything but a dict (a mapping) is a
    retryable error, as is a dict that is not JSON (NaN, an object of an
    unknown type); an output above ``max_bytes`` is a non-retryable one,
    since the broker would refuse it every time.
    """
    if output is None:
        output = {}
    if not isinstance(output, Mapping):
        return False, f"stepwise: handler returned {describe(output)}, not a JSON object", True
    try:
        body = json.dumps(dict(output), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        return False, f"stepwise: encode output: {exc}", True
    data = body.encode("utf-8", "surrogatepass")
    if len(data) > max_bytes:
        return False, f"stepwise: output of {len(data)} bytes exceeds the limit of {max_bytes} bytes", False
    return True, data, False

