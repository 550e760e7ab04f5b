"""Runs the four workers of the word-counts example on one Worker.

    python run.py [--brokers 127.0.0.1:9092] [--prefix stepwise.]

Stops on SIGTERM or Ctrl-C after finishing the tasks it started.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from book_split import QUEUE as BOOK_SPLIT, book_split  # noqa: E402
from segment_word_counts import QUEUE as SEGMENT, segment_word_counts  # noqa: E402
from store_title import QUEUE as STORE_TITLE, store_title  # noqa: E402
from sum_splits import QUEUE as SUM_SPLITS, sum_splits  # noqa: E402

from stepwise_worker import Worker  # noqa: E402

HANDLERS = {
    BOOK_SPLIT: book_split,
    SEGMENT: segment_word_counts,
    SUM_SPLITS: sum_splits,
    STORE_TITLE: store_title,
}


def register(w: Worker, concurrency: int = 8) -> None:
    """Registers every handler of the example on its queue."""
    for queue, fn in HANDLERS.items():
        w.handle(queue, fn, concurrency=concurrency)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--brokers", default=os.environ.get("KAFKA_BROKERS", "127.0.0.1:9092"))
    ap.add_argument("--prefix", default="stepwise.")
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    w = Worker(brokers=args.brokers, prefix=args.prefix, client_id="word-counts-python")
    register(w, args.concurrency)
    w.run()


if __name__ == "__main__":
    main()
