"""A worker of the original RabbitMQ workflow manager's AMQP protocol.

This is how services written for that manager receive their tasks, and
what `stepwise bridge amqp` speaks to:

- a task is a message on the durable queue named after the step's queue,
  body a JSON object (the step's input), with properties correlation_id
  ("<id>:<step name>") and reply_to (the queue to answer on);
- the handler is called as fn(correlation_id, msg) with msg the decoded
  body, and returns a dict (or None);
- the answer is published on the default exchange to reply_to, with the
  same correlation_id, content type application/json, persistent, body
  the JSON of the returned dict (empty when it returned None).

This dispatcher acknowledges a task only after RabbitMQ confirmed its
reply, so a crash between the two repeats the task rather than losing it.
A handler that raises has its task put back once, then dropped (logged):
the step's timeout in the workflow retries it. It reconnects, with
backoff, whenever the connection to RabbitMQ is lost.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from typing import Any, Callable

import pika
import pika.exceptions

Handler = Callable[[str, Any], "dict[str, Any] | None"]

log = logging.getLogger("dispatcher")


class Dispatcher:
    def __init__(self, amqp_url: str, queue_name: str, handler: Handler, prefetch: int = 32) -> None:
        self.amqp_url = amqp_url
        self.queue_name = queue_name
        self.handler = handler
        self.prefetch = prefetch
        self._stopping = False

    def run(self) -> None:
        """Serves the queue until stop() or KeyboardInterrupt."""
        attempt = 0
        while not self._stopping:
            try:
                self._serve()
                attempt = 0
            except (pika.exceptions.AMQPError, OSError) as e:
                wait = min(10.0, 0.2 * 2**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                log.warning("RabbitMQ connection lost (%r); reconnecting in %.1fs", e, wait)
                time.sleep(wait)

    def stop(self) -> None:
        self._stopping = True

    def _serve(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.queue_declare(queue=self.queue_name, durable=True)
            ch.basic_qos(prefetch_count=self.prefetch)
            ch.basic_consume(queue=self.queue_name, on_message_callback=self._on_message)
            log.info("serving queue %s", self.queue_name)
            while not self._stopping:
                conn.process_data_events(time_limit=1)
        finally:
            if conn.is_open:
                conn.close()

    def _on_message(self, ch, deliver, props, body: bytes) -> None:
        corr = props.correlation_id
        try:
            msg = json.loads(body) if body else None
            out = self.handler(corr, msg)
        except Exception:
            log.exception("handler failed on %s", corr)
            # Once more, then drop: a task that always fails must not loop.
            ch.basic_reject(deliver.delivery_tag, requeue=not deliver.redelivered)
            return
        if props.reply_to:
            reply = pika.BasicProperties(
                app_id=sys.argv[0],
                content_type="application/json",
                delivery_mode=pika.DeliveryMode.Persistent,
                correlation_id=corr,
            )
            ch.basic_publish("", props.reply_to, json.dumps(out) if out is not None else b"", properties=reply)
        ch.basic_ack(deliver.delivery_tag)
