"""The SDK's logger. Records carry their fields as ``extra`` attributes
under constant names (the ``LOG_*`` keys), so a JSON formatter or a log
query can rely on them."""

from __future__ import annotations

import logging

log = logging.getLogger("stepwise_worker")

# Names of the extra fields on log records.
LOG_QUEUE = "queue"
LOG_REQUEST = "request"
LOG_STEP = "step"
LOG_ATTEMPT = "attempt"
LOG_DURATION = "duration"
LOG_ERROR = "error"
LOG_RETRYABLE = "retryable"
LOG_TOPIC = "topic"
LOG_PARTITION = "partition"
LOG_OFFSET = "offset"
LOG_PARTITIONS = "partitions"
