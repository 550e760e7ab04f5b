"""Errors a handler raises to say how its step failed, and the SDK's own."""

from __future__ import annotations


class StepwiseError(Exception):
    """Base of the errors the SDK itself raises (configuration, usage)."""


class ConfigError(StepwiseError):
    """The worker was configured or used wrongly; the message says how."""


class ProduceError(StepwiseError):
    """A result could not be produced; the task runs again after a restart."""


class NonRetryableError(Exception):
    """A failure that retrying cannot fix.

    The step fails at once and so does the request. Any other exception a
    handler raises is retryable: the step runs again per its retry policy.
    The result reports ``str(error)`` as the message.
    """
