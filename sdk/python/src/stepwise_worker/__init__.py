"""Python SDK for Stepwise workers: programs that run the steps of workflows.

Processors write one task record per step attempt to ``<prefix>tasks.<queue>``;
a worker of that queue runs the handler registered for it and produces the
outcome to the results topic, on the partition the task names::

    processors ──► tasks.<queue> ──► Worker (handler) ──► results[reply partition] ──► processors

Delivery is at-least-once: a task's offset is committed only after its
result is acknowledged by the broker. See README.md for an example.
"""

from .core import DeadlineExceeded, Handler, HandlerFunc, LegacyHandler, TaskHandler, adapt, handle_record
from .errors import ConfigError, NonRetryableError, ProduceError, StepwiseError
from .protocol import Record, ResultRecord, Task
from .worker import DEFAULT_BROKERS, DEFAULT_CONCURRENCY, Worker

__all__ = [
    "DEFAULT_BROKERS",
    "DEFAULT_CONCURRENCY",
    "ConfigError",
    "DeadlineExceeded",
    "Handler",
    "HandlerFunc",
    "LegacyHandler",
    "NonRetryableError",
    "ProduceError",
    "Record",
    "ResultRecord",
    "StepwiseError",
    "Task",
    "TaskHandler",
    "Worker",
    "adapt",
    "handle_record",
]

__version__ = "0.1.0"
