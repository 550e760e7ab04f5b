"""The counting rules of the word-counts example, shared by its four workers.

They mirror the Go package examples/word-counts (wordcounts.go) rule for
rule, so a request gets the same output whichever language's workers run
it (test_wordcounts.py checks this against outputs of the Go handlers):

- A chapter starts at a line that reads exactly "CHAPTER <roman numeral>."
  (trailing spaces, tabs and a carriage return allowed). Text before the
  first chapter is not counted; a text without chapter lines is one section
  named "", or no section when it is blank.
- A word is a maximal run of letters and digits, lower-cased; an apostrophe
  (' or ’) between two such characters joins them.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

from stepwise_worker import NonRetryableError

TOP_WORDS = 10  # how many words sum-splits lists in top_words

BOOK_PATH = Path(__file__).resolve().parent.parent / "book.txt"

_ROMAN = set("IVXLCDM")
_APOSTROPHES = {"'", "\u2019"}
# Go's unicode.IsSpace, which strings.TrimSpace uses (Python's str.strip
# also strips the information separators U+001C-U+001F).
_GO_SPACE = set("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")


def book() -> str:
    """The bundled text, used when a request carries no "text"."""
    return BOOK_PATH.read_text(encoding="utf-8")


def go_trim_space(s: str) -> str:
    i, j = 0, len(s)
    while i < j and s[i] in _GO_SPACE:
        i += 1
    while j > i and s[j - 1] in _GO_SPACE:
        j -= 1
    return s[i:j]


def lines(text: str) -> list[str]:
    """The lines of text with their "\\n", as Go's strings.Lines: only "\\n"
    ends a line (unlike str.splitlines)."""
    out = text.split("\n")
    res = [line + "\n" for line in out[:-1]]
    if out[-1]:
        res.append(out[-1])
    return res


def chapter_heading(line: str) -> str | None:
    h = line.rstrip(" \t\r\n")
    if not h.startswith("CHAPTER ") or not h.endswith("."):
        return None
    numeral = h[len("CHAPTER ") : -1]
    if not numeral or not set(numeral) <= _ROMAN:
        return None
    return h


def split(text: str) -> list[dict[str, str]]:
    """Cuts text into chapters: [{"chapter": "CHAPTER I.", "text": ...}]."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] | None = None
    body: list[str] = []
    for line in lines(text):
        heading = chapter_heading(line)
        if heading is not None:
            if cur is not None:
                cur["text"] = "".join(body)
                out.append(cur)
            body = []
            cur = {"chapter": heading, "text": ""}
            continue
        body.append(line)
    if cur is None:
        if go_trim_space(text) == "":
            return []
        return [{"chapter": "", "text": text}]
    cur["text"] = "".join(body)
    out.append(cur)
    return out


def _is_word_char(c: str) -> bool:
    # Go: unicode.IsLetter (category L*) or unicode.IsDigit (Nd).
    cat = unicodedata.category(c)
    return cat[0] == "L" or cat == "Nd"


def _lower(c: str) -> str:
    # Go's unicode.ToLower maps one rune to one rune; str.lower() may give
    # more (U+0130 gives "i" plus a combining dot): keep the first.
    low = c.lower()
    return low if len(low) == 1 else low[0]


def count_words(text: str) -> tuple[int, dict[str, int]]:
    """Returns the number of words of text and the count of each."""
    counts: dict[str, int] = {}
    total = 0
    word: list[str] = []
    n = len(text)
    for i, c in enumerate(text):
        if _is_word_char(c):
            word.append(_lower(c))
        elif c in _APOSTROPHES and word and i + 1 < n and _is_word_char(text[i + 1]):
            word.append(c)
        elif word:
            w = "".join(word)
            counts[w] = counts.get(w, 0) + 1
            total += 1
            word = []
    if word:
        w = "".join(word)
        counts[w] = counts.get(w, 0) + 1
        total += 1
    return total, counts


def summarise(sections: list[dict[str, Any]], n: int = TOP_WORDS) -> dict[str, Any]:
    """Total words, number of chapters, and the n most frequent words as
    [word, count] pairs (ties broken alphabetically)."""
    total = 0
    all_counts: dict[str, int] = {}
    for sec in sections:
        total += sec["words"]
        for w, c in sec["counts"].items():
            all_counts[w] = all_counts.get(w, 0) + c
    # Code point order is the byte order of UTF-8, which Go compares.
    top = sorted(all_counts.items(), key=lambda wc: (-wc[1], wc[0]))[:n]
    return {"total_words": total, "chapters": len(sections), "top_words": [[w, c] for w, c in top]}


def find_title(text: str) -> str:
    """The value of the first line starting with "Title:", or ""."""
    for line in lines(text):
        if line.startswith("Title:"):
            return go_trim_space(line[len("Title:") :])
    return ""


def text_of(msg: dict[str, Any]) -> str:
    """The request's text, or the bundled book when it has none."""
    text = msg.get("text")
    if text is None:
        return book()
    if not isinstance(text, str):
        raise NonRetryableError(f'word-counts: "text" is {type(text).__name__}, not a string (want {{"text": "..."}} or {{}})')
    return text


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise NonRetryableError(f"word-counts: {what} is not an integer")
    return v


def section_count(v: Any, i: int) -> dict[str, Any]:
    """Checks one element of sum-splits' "sections"."""
    if v is None:
        raise NonRetryableError(f"word-counts: section {i} has no counts")
    if not isinstance(v, dict):
        raise NonRetryableError(f"word-counts: section {i} is not an object")
    counts = v.get("counts")
    if counts is None:
        counts = {}
    if not isinstance(counts, dict):
        raise NonRetryableError(f"word-counts: counts of section {i} is not an object")
    return {
        "words": _int(0 if v.get("words") is None else v["words"], f"words of section {i}"),
        "counts": {w: _int(c, f"count of {w!r} in section {i}") for w, c in counts.items()},
    }
