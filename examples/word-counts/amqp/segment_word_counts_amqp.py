"""The segment-word-counts step of the word-counts example as a worker of
the original manager's AMQP protocol: the same fn(correlation_id, msg)
handler the Kafka worker in ../python uses, served from RabbitMQ by
dispatcher.py. Stepwise reaches it through `stepwise bridge amqp`.

    AMQP_SERVER=amqp://guest:guest@127.0.0.1:5672/ python segment_word_counts_amqp.py

With --trace, prints one line "ran <correlation id>" per task run, so a
test can count duplicate runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from dispatcher import Dispatcher  # noqa: E402
from segment_word_counts import QUEUE, segment_word_counts  # noqa: E402  (../python)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--amqp-url", default=os.environ.get("AMQP_SERVER", "amqp://guest:guest@127.0.0.1:5672/"))
    ap.add_argument("--queue", default=QUEUE)
    ap.add_argument("--trace", action="store_true", help='print "ran <correlation id>" per task')
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)

    handler = segment_word_counts
    if args.trace:
        def handler(correlation_id, msg):  # noqa: F811
            print("ran", correlation_id, flush=True)
            return segment_word_counts(correlation_id, msg)

    d = Dispatcher(args.amqp_url, args.queue, handler)
    signal.signal(signal.SIGTERM, lambda *_: d.stop())
    try:
        d.run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
