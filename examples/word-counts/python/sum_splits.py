"""Worker of queue sum-splits: adds up the chapters' counts. Input
{"sections": [{"chapter", "words", "counts"}, ...]}; output {"total_words",
"chapters", "top_words": [[word, count], ...]} (the ten most frequent)."""

from __future__ import annotations

from typing import Any

from stepwise_worker import NonRetryableError
from wordcounts import section_count, summarise

QUEUE = "sum-splits"


def sum_splits(correlation_id: str, msg: dict[str, Any]) -> dict[str, Any]:
    sections = msg.get("sections")
    if sections is None:
        sections = []
    if not isinstance(sections, list):
        raise NonRetryableError('word-counts: "sections" is not a list')
    return summarise([section_count(s, i) for i, s in enumerate(sections)])
