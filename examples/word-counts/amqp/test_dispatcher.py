"""The dispatcher speaks the original manager's protocol: the handler gets
(correlation_id, msg), the reply goes to reply_to with the same
correlation id before the task is acknowledged, and a failing handler's
task is put back once, then dropped. No RabbitMQ needed: a fake channel
records the calls."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dispatcher import Dispatcher  # noqa: E402


class FakeChannel:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def basic_publish(self, exchange, routing_key, body, properties=None):
        self.calls.append(("publish", exchange, routing_key, body, properties))

    def basic_ack(self, tag):
        self.calls.append(("ack", tag))

    def basic_reject(self, tag, requeue):
        self.calls.append(("reject", tag, requeue))


def deliver(tag: int, redelivered: bool = False):
    return SimpleNamespace(delivery_tag=tag, redelivered=redelivered)


def props(corr: str, reply_to: str | None = "replies"):
    return SimpleNamespace(correlation_id=corr, reply_to=reply_to)


def test_reply_then_ack():
    seen = []

    def handler(correlation_id, msg):
        seen.append((correlation_id, msg))
        return {"n": msg["n"] + 1}

    ch = FakeChannel()
    Dispatcher("amqp://unused/", "q", handler)._on_message(ch, deliver(5), props("r-1:step"), b'{"n": 1}')
    assert seen == [("r-1:step", {"n": 1})]
    assert [c[0] for c in ch.calls] == ["publish", "ack"]
    _, exchange, routing_key, body, p = ch.calls[0]
    assert (exchange, routing_key, json.loads(body)) == ("", "replies", {"n": 2})
    assert p.correlation_id == "r-1:step"
    assert p.content_type == "application/json"
    assert p.delivery_mode == 2
    assert ch.calls[1] == ("ack", 5)


def test_none_is_an_empty_body():
    ch = FakeChannel()
    Dispatcher("amqp://unused/", "q", lambda c, m: None)._on_message(ch, deliver(1), props("r-1:s"), b"{}")
    assert ch.calls[0][3] == b""


def test_failure_is_put_back_once():
    def boom(correlation_id, msg):
        raise RuntimeError("no")

    d = Dispatcher("amqp://unused/", "q", boom)
    ch = FakeChannel()
    d._on_message(ch, deliver(1), props("r-1:s"), b"{}")
    d._on_message(ch, deliver(2, redelivered=True), props("r-1:s"), b"{}")
    assert ch.calls == [("reject", 1, True), ("reject", 2, False)]
