"""Topic query language: text → compiled matcher (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """An item's title and summary, tokenised once and matched against many queries."""
    # fields are the implementation's choice


def prepare(title: str, summary: str) -> Document:
    """Tokenise an item once (normalise, fold case/diacritics, drop possessive 's)."""
    raise NotImplementedError


class Query:
    """A compiled query. `source` is the text it came from."""

    source: str

    def match(self, doc: Document) -> list[str] | None:
        """None when the query does not match; otherwise the words and phrases (as written
        in the query, in query order, without duplicates) that made the match. Negated
        terms never appear."""
        raise NotImplementedError


def compile_query(text: str) -> Query:
    """Parse once; raises QuerySyntaxError(query, column, message) when malformed."""
    raise NotImplementedError
