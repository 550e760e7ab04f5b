"""Worker of the idp example's queue ocr, in Python: reads one rendered page.

Its input and output are those of the Go handler (examples/idp/handlers.go),
field for field, so Go and Python workers of the queue can share the work:

    in:  {"name": "a.pdf", "page": {"number": 1, "image": "<base64 text>", "checksum": "<16 hex>"}}
    out: {"name": "a.pdf", "page": {"number": 1, "text": "...", "confidence": 0.93}}

The "image" is the page text in base64; the checksum (the first 16 hex
digits of the text's SHA-256) must match it, and the confidence, in
[0.90, 0.99], is derived from the same digest, so a page always reads the
same in either language. An input that can never be read fails for good.

    python ocr.py [--brokers 127.0.0.1:9092] [--prefix stepwise.] [--concurrency 8]

Each task waits four times STEPWISE_IDP_LATENCY (a Go duration, default
5ms) first, as the Go handler does. Stops on SIGTERM or Ctrl-C after
finishing the tasks it started.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import codecs
import hashlib
import logging
import os
import re
import sys
from typing import Any

from stepwise_worker import NonRetryableError, Task, Worker

QUEUE = "ocr"

# The Go handler waits this many times the example's latency for OCR.
LATENCY_FACTOR = 4
LATENCY_ENV = "STEPWISE_IDP_LATENCY"
DEFAULT_LATENCY = 0.005  # seconds, idp.DefaultLatency

_INT64 = (-(1 << 63), (1 << 63) - 1)


def _per_byte_replace(err: UnicodeError) -> tuple[str, int]:
    # Go turns each byte of an invalid UTF-8 sequence into its own U+FFFD
    # when it encodes a string as JSON; Python's "replace" would give one
    # per maximal subpart instead.
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd" * (err.end - err.start), err.end


codecs.register_error("stepwise-idp-per-byte", _per_byte_replace)


def checksum(data: bytes) -> str:
    """The checksum render writes and OCR checks: the first 16 hex digits
    of the SHA-256 of the page text's bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


def _field(obj: dict[str, Any], key: str, kind: type, where: str) -> Any:
    """obj[key] as Go's json.Unmarshal reads it into a field of kind: a
    missing or null value is the zero value, a value of another JSON type
    is an error."""
    v = obj.get(key)
    if v is None:
        return kind()
    if kind is int:
        # Go reads only integer literals into an int: 1.0 and 1e2 fail.
        if isinstance(v, bool) or not isinstance(v, int) or not _INT64[0] <= v <= _INT64[1]:
            raise NonRetryableError(f"stepwise: idp: {where}{key} is not an integer: {v!r}")
        return v
    if not isinstance(v, kind):
        raise NonRetryableError(f"stepwise: idp: {where}{key} is not a {kind.__name__}: {v!r}")
    return v


def read_page(number: int, image: str, want: str) -> dict[str, Any]:
    """Reads one scan as idp.OCR does: the text its image carries and a
    confidence in [0.90, 0.99] from the text's digest. A bad image or a
    checksum that does not match raises NonRetryableError."""
    try:
        # Go's base64 decoder skips \r and \n and nothing else.
        raw = base64.b64decode(image.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NonRetryableError(f"stepwise: idp: page {number}: image is not readable: {exc}") from None
    got = checksum(raw)
    if got != want:
        raise NonRetryableError(f"stepwise: idp: page {number}: checksum {want} does not match the image ({got})")
    digest = hashlib.sha256(raw).digest()
    return {
        "number": number,
        "text": raw.decode("utf-8", "stepwise-idp-per-byte"),
        "confidence": 0.90 + (digest[0] % 10) / 100,
    }


def ocr(msg: dict[str, Any]) -> dict[str, Any]:
    """The ocr step: {"name", "page": scan} in, {"name", "page": read page} out."""
    name = _field(msg, "name", str, "")
    page = msg.get("page")
    if page is None:
        raise NonRetryableError('stepwise: idp: ocr needs a "page"; is it fanned out over "pages"?')
    if not isinstance(page, dict):
        raise NonRetryableError(f'stepwise: idp: "page" is not an object: {page!r}')
    number = _field(page, "number", int, "page.")
    image = _field(page, "image", str, "page.")
    want = _field(page, "checksum", str, "page.")
    return {"name": name, "page": read_page(number, image, want)}


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(s: str) -> float | None:
    """Seconds in a non-negative Go duration ("5ms", "1m30s", "0"), or None
    when s is not one."""
    if s == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(s):
        m = _GO_DURATION.match(s, pos)
        if m is None:
            return None
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    return total if pos > 0 else None


def latency_from_env(env: dict[str, str] | None = None) -> tuple[float, str | None]:
    """The example's latency in seconds from STEPWISE_IDP_LATENCY, and a
    complaint when its value is not a duration (the default is used then)."""
    v = (os.environ if env is None else env).get(LATENCY_ENV, "")
    if v == "":
        return DEFAULT_LATENCY, None
    d = parse_go_duration(v)
    if d is None:
        return DEFAULT_LATENCY, f"stepwise: {LATENCY_ENV}={v!r} is not a non-negative duration such as 20ms"
    return d, None


def make_handler(latency: float) -> Any:
    """The task handler: waits latency*4 (cancelled at the task's deadline,
    which the SDK reports as a retryable failure), then reads the page."""

    async def handle(task: Task) -> dict[str, Any]:
        if latency > 0:
            await asyncio.sleep(latency * LATENCY_FACTOR)
        return ocr(task.input)

    return handle


# LogRecord attributes that are not extra fields.
_RECORD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class _Fields(logging.Formatter):
    """Appends a record's extra fields as key=value, as the Go workers' text
    logs do, so that `grep 'msg="step done"' | grep queue=ocr` counts steps."""

    def format(self, record: logging.LogRecord) -> str:
        extra = "".join(f" {k}={v}" for k, v in vars(record).items() if k not in _RECORD_ATTRS)
        return super().format(record) + extra


def tracer_from_env() -> Any:
    """An OpenTelemetry tracer provider exporting over OTLP/HTTP when the
    OTEL_* environment names an endpoint (as the Go binary does), else None.
    Needs opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http then."""
    if not (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tp = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "idp-ocr-python")}))
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return tp


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    ap.add_argument("--prefix", default="stepwise.")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--client-id", default="idp-ocr-python", help="client id reported to the brokers")
    args = ap.parse_args(argv)
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_Fields('time=%(asctime)s level=%(levelname)s msg="%(message)s"'))
    logging.basicConfig(level=logging.INFO, handlers=[h])
    latency, complaint = latency_from_env()
    if complaint:
        logging.getLogger(__name__).warning(complaint)
    tp = tracer_from_env()
    w = Worker(brokers=args.brokers, prefix=args.prefix, client_id=args.client_id, tracing=tp)
    w.handle(QUEUE, make_handler(latency), concurrency=args.concurrency)
    try:
        w.run()
    finally:
        if tp is not None:
            tp.shutdown()


if __name__ == "__main__":
    main()
