"""An echo worker of the Python SDK for the integration suite: answers every
task of one queue with its input plus {"<queue>": "python"}.

    python echo.py --brokers HOST:PORT --prefix P --queue Q
                   [--tls-ca CA.pem] [--tls-cert C.pem --tls-key K.pem]

Stops on SIGTERM after finishing the tasks it started.
"""

import argparse
import logging

from stepwise_worker import Task, Worker


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--queue", required=True)
    ap.add_argument("--tls-ca")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO)
    worker = Worker(
        brokers=args.brokers,
        prefix=args.prefix,
        client_id="it-echo-python",
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )

    @worker.handler(args.queue)
    def echo(task: Task) -> dict:
        return {**task.input, args.queue: "python"}

    logging.info("python echo worker running on queue %s", args.queue)
    worker.run()


if __name__ == "__main__":
    main()
