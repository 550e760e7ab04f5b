"""Worker of queue segment-word-counts: counts the words of one chapter.
Input {"section": {"chapter", "text"}}; output {"section": {"chapter",
"words", "counts"}}, collected back under "sections" at the join."""

from __future__ import annotations

from typing import Any

from stepwise_worker import NonRetryableError
from wordcounts import count_words

QUEUE = "segment-word-counts"


def segment_word_counts(correlation_id: str, msg: dict[str, Any]) -> dict[str, Any]:
    section = msg.get("section")
    if section is None:
        raise NonRetryableError('word-counts: input has no "section" object; is the step fanned out over "sections"?')
    if not isinstance(section, dict):
        raise NonRetryableError('word-counts: "section" is not an object')
    # A missing or null field is empty, as Go decodes it.
    chapter, text = section.get("chapter"), section.get("text")
    chapter = "" if chapter is None else chapter
    text = "" if text is None else text
    if not isinstance(chapter, str) or not isinstance(text, str):
        raise NonRetryableError('word-counts: "section" needs string "chapter" and "text"')
    words, counts = count_words(text)
    return {"section": {"chapter": chapter, "words": words, "counts": counts}}
