"""Item and query text → normalised words; an item tokenised once for many queries (pure)."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice, takewhile

# The lookbehind sits after the apostrophe so that the engine can skip to each "'" instead
# of trying the lookbehind at every position; after NFKD, "ſ" is "s", so [sS] is all of
# IGNORECASE's s.
_POSSESSIVE = re.compile(r"'(?<=[^\W_]')[sS](?![^\W_])")
_WORD = re.compile(r"[^\W_]+")
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")
# Every ASCII character that is not a letter or digit, as a space: in ASCII text a word is
# then what str.split() returns, a third faster than _WORD.findall.
_ASCII_SEPARATORS = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


class _RunCache(dict[str, str]):
    """A run of non-ASCII characters → `clean(run)`, each run computed once: the same
    quotes, dashes and words come back again and again. Bounded, for a daemon that reads
    every script."""

    def __init__(self, clean: Callable[[str], str], limit: int = 50_000):
        super().__init__()
        self.clean, self.limit = clean, limit

    def __call__(self, run: re.Match[str]) -> str:
        text = run.group()
        done = self.get(text)
        if done is None:
            if len(self) >= self.limit:
                self.clear()
            done = self[text] = self.clean(text)
        return done


# Every combining mark dropped.
_without_marks = _RunCache(lambda run: "".join([c for c in run if unicodedata.category(c)[0] != "M"]))
# Non-word characters (curly quotes, dashes, ...) as spaces; letters and digits kept.
_separated = _RunCache(lambda run: "".join([c if c.isalnum() else " " for c in run]))
# The non-ASCII characters that most English text has, replaced up front by str.replace
# (a fast scan in C), so that such text takes the ASCII path: quotes, dashes, zero-width
# joiners and spaces, currency signs. None of them is a mark or composes under NFC, so
# replacing them before the other steps changes nothing but the speed.
_COMMON = (("\u2019", "'"), ("\u2018", "'"), ("\u02bc", "'"), ("\u201c", " "), ("\u201d", " "),
           ("\u2013", " "), ("\u2014", " "), ("\u200b", " "), ("\u2060", " "), ("\u200c", " "),
           ("\u200d", " "), ("\u00a3", " "), ("\u20ac", " "))


def _spaced(text: str) -> str:
    """`text` normalised, with its words separated by white space and nothing else, so
    that `.split()` gives them: NFKD, every combining mark dropped (é → e, й → и), NFC,
    curly apostrophes straightened, a possessive 's removed; a word is a run of letters
    and digits (`_`, hyphens, slashes and punctuation separate words)."""
    text = unicodedata.normalize("NFKD", text)
    if not text.isascii():
        for char, replacement in _COMMON:
            text = text.replace(char, replacement)
        if not text.isascii():
            # Only the non-ASCII runs can hold a mark. NFC puts back what NFKD took apart
            # without a mark, e.g. Hangul syllables.
            text = unicodedata.normalize("NFC", _NON_ASCII.sub(_without_marks, text))
    if "'" in text:
        text = _POSSESSIVE.sub("", text)
    if not text.isascii():
        # A word is a run of str.isalnum() characters: that is what [^\W_] means.
        text = _NON_ASCII.sub(_separated, text)
        if not text.isascii():  # letters of other scripts
            return " ".join(_WORD.findall(text))
    return text.translate(_ASCII_SEPARATORS)


def tokenise(text: str) -> list[str]:
    """Normalised words, case kept (see _spaced)."""
    return _spaced(text).split()


def fits(candidate: str, word: str) -> bool:
    """Whether `candidate` is `word`, or starts with it when `word` ends in `*`."""
    if word.endswith("*"):
        return candidate.startswith(word[:-1])
    return candidate == word


def has_prefix(vocabulary: Sequence[str], stem: str) -> bool:
    """Whether a word of the sorted `vocabulary` starts with `stem`."""
    at = bisect_left(vocabulary, stem)
    return at < len(vocabulary) and vocabulary[at].startswith(stem)


def starting(vocabulary: Sequence[str], stem: str) -> list[str]:
    """The words of the sorted `vocabulary` that start with `stem`."""
    return list(takewhile(lambda w: w.startswith(stem), islice(vocabulary, bisect_left(vocabulary, stem), None)))


@dataclass(frozen=True)
class FieldTokens:
    """One field of an item as words. What only some queries need (the words with their
    case kept, a set or the sorted vocabulary of this field's own) is made on first use:
    the query index rules out most queries with the item's set of words alone."""

    name: str                       # "title" or "summary"
    words: tuple[str, ...]          # folded
    spaced: str = dataclasses.field(default="", repr=False, compare=False)  # see _spaced

    @cached_property
    def originals(self) -> tuple[str, ...]:
        """The words with their case kept, position for position."""
        return tuple(self.spaced.split())

    @cached_property
    def wordset(self) -> frozenset[str]:
        return frozenset(self.words)

    @cached_property
    def vocabulary(self) -> tuple[str, ...]:
        """The distinct words, sorted, for prefix lookups."""
        return tuple(sorted(self.wordset))

    @cached_property
    def joined(self) -> str:
        """The words between single spaces, a space at each end: a phrase of plain words
        occurs exactly where " its words " does, and str's search runs in C."""
        return f" {' '.join(self.words)} "

    def positions(self, word: str) -> list[int]:
        """Where the folded `word` occurs, ascending."""
        # tuple.count and tuple.index scan in C: cheaper than an index of every word's
        # positions, which most items never need.
        found, words, at = [], self.words, -1
        for _ in range(words.count(word)):
            at = words.index(word, at + 1)
            found.append(at)
        return found

    def find(self, word: str, exact: str | None) -> list[int]:
        """Positions of `word` (folded; a trailing `*` makes it a prefix), ascending;
        `exact`, when given, must also fit the word with its case kept."""
        if word.endswith("*"):
            found = sorted(p for w in starting(self.vocabulary, word[:-1]) for p in self.positions(w))
        else:
            found = self.positions(word)
        if exact is None:
            return found
        return [p for p in found if fits(self.originals[p], exact)]

    def fits(self, position: int, word: str, exact: str | None) -> bool:
        """Whether the word at `position` is `word` (and `exact`, when given)."""
        return (
            position < len(self.words)
            and fits(self.words[position], word)
            and (exact is None or fits(self.originals[position], exact))
        )


@dataclass(frozen=True)
class Document:
    """An item's title and summary, tokenised once and matched against many queries."""

    title: FieldTokens
    summary: FieldTokens
    words: frozenset[str] = dataclasses.field(repr=False, compare=False)  # of both fields: what the index looks up
    # What the costlier checks (phrases, NEAR) found, for the next topic that has the same one.
    memo: dict[object, bool] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def fields(self) -> tuple[FieldTokens, FieldTokens]:
        """Both fields, title first: the order in which prefix matches are reported."""
        return (self.title, self.summary)

    def field(self, name: str) -> FieldTokens:
        return self.title if name == "title" else self.summary

    @cached_property
    def vocabulary(self) -> tuple[str, ...]:
        """`words`, sorted, for prefix lookups."""
        return tuple(sorted(self.words))


def _field_tokens(name: str, text: str) -> FieldTokens:
    spaced = _spaced(text)
    # Case folding works code point by code point, never makes or removes a space and keeps
    # a letter a letter, so folding the whole text folds each word as word.casefold() would.
    return FieldTokens(name, tuple(spaced.casefold().split()), spaced)


def prepare(title: str, summary: str) -> Document:
    """Tokenise an item once (normalise, fold case/diacritics, drop possessive 's).

    Each field keeps its words twice: casefolded, for ordinary terms, and with case kept,
    for `{...}` terms, which thus compare case exactly but still ignore diacritics."""
    head, body = _field_tokens("title", title), _field_tokens("summary", summary)
    return Document(head, body, frozenset(head.words).union(body.words))
