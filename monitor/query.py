"""Topic query language: text → compiled matcher (pure)."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import islice
from typing import NamedTuple, NoReturn

from monitor.errors import QuerySyntaxError

FIELDS = ("title", "summary")

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


def _words(text: str) -> list[str]:
    """Normalised words, case kept (see _spaced)."""
    return _spaced(text).split()


def _fits(candidate: str, word: str) -> bool:
    """Whether `candidate` is `word`, or starts with it when `word` ends in `*`."""
    if word.endswith("*"):
        return candidate.startswith(word[:-1])
    return candidate == word


@dataclass(frozen=True)
class FieldTokens:
    """One field of an item as words. The words with their case kept, and the index that
    makes many queries cheap, are made on first use: the query index rules out most
    queries with the folded words alone."""

    name: str                       # "title" or "summary"
    words: tuple[str, ...]          # folded
    spaced: str = dataclasses.field(default="", repr=False, compare=False)  # see _spaced

    @cached_property
    def originals(self) -> tuple[str, ...]:
        """The words with their case kept, position for position."""
        return tuple(self.spaced.split())

    @cached_property
    def index(self) -> dict[str, list[int]]:
        """Folded word → positions, ascending."""
        index: dict[str, list[int]] = {}
        for position, word in enumerate(self.words):
            index.setdefault(word, []).append(position)
        return index

    @cached_property
    def vocabulary(self) -> tuple[str, ...]:
        """The index's words, sorted, for prefix lookups."""
        return tuple(sorted(self.index))

    def find(self, word: str, exact: str | None) -> Sequence[int]:
        """Positions of `word` (folded; a trailing `*` makes it a prefix), ascending;
        `exact`, when given, must also fit the word with its case kept."""
        if word.endswith("*"):
            found: Sequence[int] = sorted(
                p for w in self._starting(word[:-1]) for p in self.index[w]
            )
        else:
            found = self.index.get(word, ())
        if exact is None:
            return found
        return [p for p in found if _fits(self.originals[p], exact)]

    def fits(self, position: int, word: str, exact: str | None) -> bool:
        """Whether the word at `position` is `word` (and `exact`, when given)."""
        return (
            position < len(self.words)
            and _fits(self.words[position], word)
            and (exact is None or _fits(self.originals[position], exact))
        )

    def _starting(self, stem: str) -> Iterator[str]:
        for word in islice(self.vocabulary, bisect_left(self.vocabulary, stem), None):
            if not word.startswith(stem):
                return
            yield word


@dataclass(frozen=True)
class Document:
    """An item's title and summary, tokenised once and matched against many queries."""

    title: FieldTokens
    summary: FieldTokens

    @property
    def fields(self) -> tuple[FieldTokens, FieldTokens]:
        """Both fields, title first: the order in which prefix matches are reported."""
        return (self.title, self.summary)

    @cached_property
    def words(self) -> frozenset[str]:
        """Every folded word of both fields: what the query index looks up."""
        return frozenset(self.title.words).union(self.summary.words)


def _field_tokens(name: str, text: str) -> FieldTokens:
    spaced = _spaced(text)
    # Case folding works code point by code point, never makes or removes a space and keeps
    # a letter a letter, so folding the whole text folds each word as word.casefold() would.
    return FieldTokens(name, tuple(spaced.casefold().split()), spaced)


def prepare(title: str, summary: str) -> Document:
    """Tokenise an item once (normalise, fold case/diacritics, drop possessive 's).

    Each field keeps its words twice: casefolded, for ordinary terms, and with case kept,
    for `{...}` terms, which thus compare case exactly but still ignore diacritics."""
    return Document(_field_tokens("title", title), _field_tokens("summary", summary))


# (column of the term in the query, what to report): the column orders the report.
Hit = tuple[int, str]


class Span(NamedTuple):
    """Where a leaf occurs in one field: first and last word positions, inclusive."""

    start: int
    end: int
    column: int
    label: str


class _Leaf:
    """Shared matching for Term, Prefix and Phrase: a leaf is a set of spans."""

    field: str | None
    column: int

    def hits(self, doc: Document) -> list[Hit] | None:
        found = [(s.column, s.label) for tokens in doc.fields for s in self.spans(tokens)]
        return found or None

    def spans(self, tokens: FieldTokens) -> Iterator[Span]:
        """Occurrences in `tokens`; none when the leaf is restricted to another field."""
        return self._spans(tokens) if self.field in (None, tokens.name) else iter(())

    def _spans(self, tokens: FieldTokens) -> Iterator[Span]:
        raise NotImplementedError


@dataclass(frozen=True)
class Term(_Leaf):
    """One word. Reported as the query wrote it."""

    word: str                       # folded
    label: str
    exact: str | None = None        # case-kept form for `{...}`
    field: str | None = None        # "title" or "summary"; None: either
    column: int = dataclasses.field(default=0, compare=False, repr=False)

    def _spans(self, tokens: FieldTokens) -> Iterator[Span]:
        for p in tokens.find(self.word, self.exact):
            yield Span(p, p, self.column, self.label)


@dataclass(frozen=True)
class Prefix(_Leaf):
    """Any word starting with `stem`. Reported as the item wrote the word."""

    stem: str                       # folded, without the `*`
    exact: str | None = None
    field: str | None = None
    column: int = dataclasses.field(default=0, compare=False, repr=False)

    def _spans(self, tokens: FieldTokens) -> Iterator[Span]:
        exact = None if self.exact is None else self.exact + "*"
        for p in tokens.find(self.stem + "*", exact):
            yield Span(p, p, self.column, tokens.originals[p])


@dataclass(frozen=True)
class Phrase(_Leaf):
    """Consecutive words; a word ending in `*` is a prefix. Reported as the query wrote
    it, or as the item wrote it when it holds a prefix."""

    words: tuple[str, ...]          # folded
    label: str
    exact: tuple[str, ...] | None = None
    field: str | None = None
    column: int = dataclasses.field(default=0, compare=False, repr=False)

    def _spans(self, tokens: FieldTokens) -> Iterator[Span]:
        exact = self.exact or (None,) * len(self.words)
        last = len(self.words) - 1
        for p in tokens.find(self.words[0], exact[0]):
            if all(tokens.fits(p + k, self.words[k], exact[k]) for k in range(1, last + 1)):
                yield Span(p, p + last, self.column, self._label(tokens, p))

    def _label(self, tokens: FieldTokens, start: int) -> str:
        if any(w.endswith("*") for w in self.words):
            return " ".join(tokens.originals[start : start + len(self.words)])
        return self.label


Leaf = Term | Prefix | Phrase


@dataclass(frozen=True)
class And:
    """Every child; reports what each child reports."""

    children: tuple[Node, ...]
    column: int = dataclasses.field(default=0, compare=False, repr=False)

    def hits(self, doc: Document) -> list[Hit] | None:
        found: list[Hit] = []
        for child in self.children:
            got = child.hits(doc)
            if got is None:
                return None
            found += got
        return found


@dataclass(frozen=True)
class Or:
    """Any child; reports what every present child reports."""

    children: tuple[Node, ...]
    column: int = dataclasses.field(default=0, compare=False, repr=False)

    def hits(self, doc: Document) -> list[Hit] | None:
        # Every branch is tried so that each present alternative is reported.
        results = [got for child in self.children if (got := child.hits(doc)) is not None]
        return [hit for got in results for hit in got] if results else None


@dataclass(frozen=True)
class Not:
    """The child is absent; reports nothing."""

    child: Node
    column: int = dataclasses.field(default=0, compare=False, repr=False)

    def hits(self, doc: Document) -> list[Hit] | None:
        return [] if self.child.hits(doc) is None else None


@dataclass(frozen=True)
class Near:
    """Some alternative of `left` and some alternative of `right` in the same field,
    in either order, 1 <= distance <= `distance` apart. The distance is the difference
    between the positions of their nearest words: adjacent words are 1 apart, so NEAR/5
    allows up to four words between. Overlapping occurrences do not count. Reports only
    the alternatives that took part in such a pair."""

    left: tuple[Leaf, ...]
    right: tuple[Leaf, ...]
    distance: int
    column: int = dataclasses.field(default=0, compare=False, repr=False)

    def hits(self, doc: Document) -> list[Hit] | None:
        found: list[Hit] = []
        for tokens in doc.fields:
            rights = [s for leaf in self.right for s in leaf.spans(tokens)]
            if not rights:
                continue
            for a in (s for leaf in self.left for s in leaf.spans(tokens)):
                for b in rights:
                    if 1 <= _gap(a, b) <= self.distance:
                        found += [(a.column, a.label), (b.column, b.label)]
        return found or None


def _gap(a: Span, b: Span) -> int:
    """Position difference between the nearest words of two spans; 0 if they overlap."""
    if a.end < b.start:
        return b.start - a.end
    if b.end < a.start:
        return a.start - b.end
    return 0


Node = Term | Prefix | Phrase | And | Or | Not | Near


@dataclass(frozen=True)
class Query:
    """A compiled query. `source` is the text it came from; `root` its syntax tree."""

    source: str
    root: Node

    def match(self, doc: Document) -> list[str] | None:
        """None when the query does not match; otherwise the words and phrases (as written
        in the query, in query order, without duplicates) that made the match. Negated
        terms never appear; a prefix reports the item's words as written; labels that
        differ only in case count as duplicates. Never an empty list: compile_query
        refuses queries that could match without a positive term."""
        found = self.root.hits(doc)
        if found is None:
            return None
        found.sort(key=lambda hit: hit[0])
        labels: dict[str, str] = {}
        for _, label in found:
            labels.setdefault(label.casefold(), label)
        return list(labels.values())


def compile_query(text: str) -> Query:
    """Parse once; raises QuerySyntaxError(query, column, message) when malformed."""
    root = _Parser(text, _lex(text)).parse()
    unanchored = _negative_only(root)
    if unanchored is not None:
        raise QuerySyntaxError(
            text, unanchored.column, "only negated terms here: it would match almost every item"
        )
    return Query(text, root)


def _negative_only(node: Node) -> Node | None:
    """The part of `node` that can match without any positive term, if there is one."""
    if isinstance(node, Not):
        return node
    if isinstance(node, And):
        return node if all(_negative_only(c) for c in node.children) else None
    if isinstance(node, Or):
        return next((n for c in node.children if (n := _negative_only(c))), None)
    return None


# --- lexing -------------------------------------------------------------------------

_QUOTES = '"\u201c\u201d'
_RUN_ENDS = frozenset("(){}" + _QUOTES)
_FIELD_PREFIX = re.compile(r"[^\W\d_]+:")
_NEAR = re.compile(r"NEAR/([0-9]+)")
_BINARY = ("AND", "OR", "NEAR")
_TERM_START = frozenset({"word", "phrase", "exact", "(", "field", "NOT", "-"})


class _Token(NamedTuple):
    kind: str    # "word" "phrase" "exact" "(" ")" "-" "field" "AND" "OR" "NOT" "NEAR" "end"
    text: str    # as written; for phrases and {exact} the text inside the delimiters
    column: int  # 1-based, of the first character (the opening quote or brace)


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(char, char, i + 1))
            i += 1
        elif char == "}":
            raise QuerySyntaxError(query, i + 1, 'unexpected "}"')
        elif char in _QUOTES or char == "{":
            i = _lex_quoted(query, i, tokens)
        elif char == "-":
            i = _lex_minus(query, i, tokens)
        else:
            i = _lex_run(query, i, tokens)
    tokens.append(_Token("end", "", len(query) + 1))
    return tokens


def _lex_quoted(query: str, start: int, tokens: list[_Token]) -> int:
    braces = query[start] == "{"
    closers = "}" if braces else _QUOTES
    end = next((j for j in range(start + 1, len(query)) if query[j] in closers), None)
    if end is None:
        raise QuerySyntaxError(query, start + 1, 'unclosed "{"' if braces else "unterminated phrase")
    inner = query[start + 1 : end]
    if braces and "{" in inner:
        raise QuerySyntaxError(query, start + 2 + inner.index("{"), 'unexpected "{"')
    tokens.append(_Token("exact" if braces else "phrase", inner, start + 1))
    return end + 1


def _lex_minus(query: str, start: int, tokens: list[_Token]) -> int:
    after = query[start + 1 : start + 2]
    if not after or after.isspace() or after in ")}":
        raise QuerySyntaxError(query, start + 1, 'expected a term after "-"')
    tokens.append(_Token("-", "-", start + 1))
    return start + 1


def _lex_run(query: str, start: int, tokens: list[_Token]) -> int:
    """A bare run of characters: a field prefix, an operator or a word."""
    end = start
    while end < len(query) and not query[end].isspace() and query[end] not in _RUN_ENDS:
        end += 1
    run = query[start:end]
    column = start + 1
    prefix = _FIELD_PREFIX.match(run)
    if prefix:
        after = query[start + prefix.end() : start + prefix.end() + 1]
        attached = bool(after) and not after.isspace()
        if prefix.group()[:-1] in FIELDS:
            if not attached:
                raise QuerySyntaxError(query, column, f'expected a term after "{prefix.group()}"')
            tokens.append(_Token("field", prefix.group(), column))
            return start + prefix.end()
        if attached:
            raise QuerySyntaxError(
                query, column, f'unknown field "{prefix.group()}" (use title: or summary:)'
            )
    if run in ("AND", "OR", "NOT"):
        tokens.append(_Token(run, run, column))
    elif run == "NEAR" or run.startswith("NEAR/"):
        near = _NEAR.fullmatch(run)
        if near is None:
            raise QuerySyntaxError(query, column, "NEAR needs a distance, like NEAR/5")
        if int(near.group(1)) == 0:
            raise QuerySyntaxError(query, column, "NEAR distance must be at least 1")
        tokens.append(_Token("NEAR", run, column))
    else:
        tokens.append(_Token("word", run, column))
    return end


# --- parsing ------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the tokens; `field` is the enclosing field restriction,
    pushed down into the leaves. Loosest first (NOT binds tightest):

        or      := and ("OR" and)*
        and     := near (["AND"] near)*          juxtaposition is AND
        near    := unary ["NEAR/n" unary]        no chains: a NEAR/2 b NEAR/2 c is refused
        unary   := ["NOT" | "-"] primary
        primary := ("title:" | "summary:") primary | "(" or ")" | word | "phrase" | {exact}
    """

    def __init__(self, query: str, tokens: list[_Token]):
        self.query = query
        self.tokens = tokens
        self.pos = 0

    def parse(self) -> Node:
        if self._peek().kind == "end":
            self._fail(1, "empty query")
        node = self._or(None)
        extra = self._peek()
        if extra.kind != "end":  # only a stray ")" can stop the descent early
            self._fail(extra.column, f'unexpected "{extra.text}"')
        return node

    def _or(self, field: str | None) -> Node:
        children = [self._and(field)]
        while self._peek().kind == "OR":
            self._advance()
            children.append(self._and(field))
        return _join(Or, children)

    def _and(self, field: str | None) -> Node:
        children = [self._near(field)]
        while self._peek().kind == "AND" or self._peek().kind in _TERM_START:
            if self._peek().kind == "AND":
                self._advance()
            children.append(self._near(field))
        return _join(And, children)

    def _near(self, field: str | None) -> Node:
        left = self._unary(field)
        if self._peek().kind != "NEAR":
            return left
        distance = int(self._advance().text.removeprefix("NEAR/"))
        right = self._unary(field)
        if self._peek().kind == "NEAR":
            self._fail(self._peek().column, "NEAR cannot be chained; join pairs with AND")
        return Near(self._operand(left), self._operand(right), distance, left.column)

    def _unary(self, field: str | None) -> Node:
        if self._peek().kind in ("NOT", "-"):
            op = self._advance()
            return Not(self._primary(field), op.column)
        return self._primary(field)

    def _primary(self, field: str | None) -> Node:
        before = self.tokens[self.pos - 1] if self.pos else None
        token = self._advance()
        if token.kind == "field":
            name = token.text[:-1]
            if field not in (None, name):
                self._fail(token.column, f'"{token.text}" inside "{field}:"')
            return self._primary(name)
        if token.kind == "(":
            return self._group(token, field)
        if token.kind in ("word", "phrase", "exact"):
            return _leaf(self.query, token, field)
        self._missing_term(before, token)

    def _group(self, opener: _Token, field: str | None) -> Node:
        if self._peek().kind == ")":
            self._fail(opener.column, "empty parentheses")
        node = self._or(field)
        if self._peek().kind != ")":
            self._fail(opener.column, 'unclosed "("')
        self._advance()
        return node

    def _missing_term(self, before: _Token | None, found: _Token) -> NoReturn:
        if before is not None and before.kind in (*_BINARY, "NOT", "-", "field"):
            column = before.column if found.kind == "end" else found.column
            self._fail(column, f'expected a term after "{before.text}"')
        if found.kind in _BINARY:
            self._fail(found.column, f'expected a term before "{found.text}"')
        if found.kind == "end" and before is not None:  # only "(" can precede the end here
            self._fail(before.column, 'unclosed "("')
        self._fail(found.column, f'unexpected "{found.text}"')

    def _operand(self, node: Node) -> tuple[Leaf, ...]:
        """A NEAR operand as its alternatives; anything but leaves and OR is refused."""
        if isinstance(node, (Term, Prefix, Phrase)):
            return (node,)
        if isinstance(node, Or):
            return tuple(leaf for child in node.children for leaf in self._operand(child))
        if isinstance(node, Not):
            self._fail(node.column, "a NEAR operand cannot be negated; negate the whole NEAR")
        if isinstance(node, And):
            self._fail(node.column, "a NEAR operand cannot contain AND; use OR, or join NEARs with AND")
        self._fail(node.column, "NEAR cannot be nested; join pairs with AND")

    def _peek(self) -> _Token:
        return self.tokens[self.pos]

    def _advance(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def _fail(self, column: int, message: str) -> NoReturn:
        raise QuerySyntaxError(self.query, column, message)


def _join(kind: type[And] | type[Or], children: list[Node]) -> Node:
    """One child stands for itself; nested nodes of the same kind are flattened."""
    if len(children) == 1:
        return children[0]
    flat = tuple(g for c in children for g in (c.children if isinstance(c, kind) else (c,)))
    return kind(flat, children[0].column)


def _leaf(query: str, token: _Token, field: str | None) -> Leaf:
    """A word, "phrase" or {exact} token as a Term, Prefix or Phrase."""
    start = token.column if token.kind == "word" else token.column + 1
    words = _query_words(query, token.text, start)
    if not words:
        message = {
            "word": f'no letters or digits in "{token.text}"',
            "phrase": "empty phrase",
            "exact": "empty braces",
        }[token.kind]
        raise QuerySyntaxError(query, token.column, message)
    label = " ".join(token.text.split())
    folded = tuple(w.casefold() for w in words)
    exact = tuple(words) if token.kind == "exact" else None
    if len(words) > 1:
        return Phrase(folded, label, exact, field, token.column)
    cased = None if exact is None else exact[0]
    if folded[0].endswith("*"):
        return Prefix(folded[0][:-1], cased and cased[:-1], field, token.column)
    return Term(folded[0], label, cased, field, token.column)


def _query_words(query: str, text: str, start: int) -> list[str]:
    """Normalised words of a query term, case kept; a word ending in `*` is a prefix.
    `start` is the column of text[0], for errors."""
    words: list[str] = []
    for chunk in re.finditer(r"\S+", text):
        body = chunk.group()
        star = body.find("*")
        if star != -1 and star != len(body) - 1:
            raise QuerySyntaxError(query, start + chunk.start() + star, '"*" may only end a word')
        found = _words(body.removesuffix("*"))
        if star != -1:
            if not found:
                raise QuerySyntaxError(query, start + chunk.start() + star, '"*" must follow a word')
            found[-1] += "*"
        words += found
    return words
