"""Worker of queue book-split: cuts the request's text into chapters, one
fan-out child of section-counts each. Input {"text": "..."} or {} (the
bundled book); output {"sections": [{"chapter": "CHAPTER I.", "text": ...}]}."""

from __future__ import annotations

from typing import Any

from wordcounts import split, text_of

QUEUE = "book-split"


def book_split(correlation_id: str, msg: dict[str, Any]) -> dict[str, Any]:
    return {"sections": split(text_of(msg))}
