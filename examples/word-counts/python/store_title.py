"""Worker of queue store-title: finds the text's title (the first line
starting with "Title:"). Input {"text": "..."} or {}; output {"title": ...}."""

from __future__ import annotations

from typing import Any

from wordcounts import find_title, text_of

QUEUE = "store-title"


def store_title(correlation_id: str, msg: dict[str, Any]) -> dict[str, Any]:
    return {"title": find_title(text_of(msg))}
