"""The few words around an alert's first match, from the stored item text and its matched words (pure)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from monitor.words import tokenise

SNIPPET_LIMIT = 160  # characters, "…" included
_CHUNK = re.compile(r"\S+")


@dataclass(frozen=True)
class Snippet:
    text: str            # at most SNIPPET_LIMIT characters, on one line
    field: str | None    # where the match is: "title", "summary"; None: no matched word was found
    end: int = 0         # the character offset in that field where the match ends


def snippet(title: str, summary: str, matched: Sequence[str], limit: int = SNIPPET_LIMIT) -> Snippet:
    """The text around the first place, title before summary, where a matched word or
    phrase occurs, compared as queries compare (case, diacritics and possessive 's
    aside; the same case preferred, which tells {US} from "us"), cut on word boundaries
    with "…" where text was left out. Without such a place (an alert without matched
    words), the start of the summary, else of the title."""
    labels = [words for label in matched if (words := tokenise(label))]
    for field, text in (("title", title), ("summary", summary)):
        # White space collapsed first: it separates words and nothing else, so the words
        # are the same, and the offsets are those of the text shown.
        flat = " ".join(text.split())
        found = _first(flat, labels)
        if found is not None:
            start, end = found
            return Snippet(_window(flat, start, end, limit), field, end)
    flat = " ".join((summary if summary.strip() else title).split())
    return Snippet(_window(flat, 0, 0, limit), None)


def _first(text: str, labels: list[list[str]]) -> tuple[int, int] | None:
    """The character span of the earliest occurrence of any label in `text`."""
    words = tokenise(text)
    folded = [w.casefold() for w in words]
    best: tuple[int, int] | None = None  # (word position, number of words)
    for label in labels:
        wanted = [w.casefold() for w in label]
        places = [i for i in range(len(words) - len(label) + 1) if folded[i : i + len(label)] == wanted]
        if places:
            exact = [i for i in places if words[i : i + len(label)] == label]
            at = (exact or places)[0]
            if best is None or at < best[0]:
                best = (at, len(label))
    if best is None:
        return None
    return _characters(text, best[0], best[0] + best[1] - 1)


def _characters(text: str, first: int, last: int) -> tuple[int, int]:
    """Word positions → the character span of the text's chunks that hold them. Words
    never span white space, so each chunk between spaces is tokenised on its own."""
    seen, start = 0, 0
    for chunk in _CHUNK.finditer(text):
        count = len(tokenise(chunk.group()))
        if seen <= first < seen + count:
            start = chunk.start()
        if seen <= last < seen + count:
            return start, chunk.end()
        seen += count
    return start, len(text)


def _window(flat: str, start: int, end: int, limit: int) -> str:
    """At most `limit` characters of the one-line `flat` around [start, end): a third
    of the room before the match, cut on word boundaries, "…" where text is left out."""
    if len(flat) <= limit:
        return flat
    room = limit - 2  # an ellipsis at each end
    lead = max(0, start - max(0, room - (end - start)) // 3)
    lead = max(0, min(lead, len(flat) - (limit - 1)))  # near the end, fill the room
    if lead > 0 and flat[lead - 1] != " ":
        space = flat.find(" ", lead, start)
        if space != -1:
            lead = space + 1
    head = "…" if lead > 0 else ""
    rest = flat[lead:]
    if len(head) + len(rest) <= limit:
        return head + rest
    cut = rest[: limit - len(head) - 1]
    space = cut.rfind(" ")
    if space > end - lead:  # on a word boundary, if that keeps the match whole
        cut = cut[:space]
    return head + cut.rstrip() + "…"
