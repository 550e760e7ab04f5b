"""A worker process for the broker tests: ``python worker_proc.py BROKERS
PREFIX MODE MARKER``. It serves queue "ocr" and writes one line per task
started to MARKER. MODE "hang": the handler never returns (the test kills
the process); MODE "slow": the handler takes a second and echoes."""

from __future__ import annotations

import logging
import sys
import threading
import time

from stepwise_worker import Task, Worker


def main() -> None:
    brokers, prefix, mode, marker = sys.argv[1:5]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    w = Worker(brokers=brokers, prefix=prefix, commit_interval=0.2, consumer_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})

    @w.handler("ocr", concurrency=2)
    def ocr(task: Task) -> dict:
        with open(marker, "a") as f:
            f.write(f"{task.request}\n")
        if mode == "hang":
            threading.Event().wait()
        time.sleep(1.0)
        return {"by": "proc", **task.input}

    w.run()


if __name__ == "__main__":
    main()
