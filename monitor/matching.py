"""A query's syntax tree → the functions that match it against a prepared item (pure).

Each node becomes two closures. `holds(doc)` says whether the node holds, the cheap way:
with set lookups and short-circuits, no positions unless a phrase or NEAR needs them, no
labels. `collect(doc, hits)` appends what a node that holds reports. Most of the topics
the query index hands over do not match, and those never get past `holds`. A query's
report is made the cheapest way its shape allows: once for all items when it never
changes, in one pass over an OR of words and phrases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import NamedTuple, TypeGuard

from monitor.query import And, Leaf, Near, Node, Not, Or, Phrase, Prefix, Term
from monitor.words import Document, FieldTokens, has_prefix, starting

# (column of the term in the query, what to report): the column orders the report.
Hit = tuple[int, str]
Holds = Callable[[Document], bool]
Collect = Callable[[Document, list[Hit]], None]


Report = Callable[[Document], list[str]]


@dataclass(frozen=True)
class Matcher:
    """A compiled query: see Query.match."""

    holds: Holds
    report: Report  # what the query reports for a document it holds for
    fixed: tuple[str, ...] | None = None  # the report, when it is the same for every item

    def match(self, doc: Document) -> list[str] | None:
        return self.report(doc) if self.holds(doc) else None


def _report(hits: list[Hit]) -> list[str]:
    """The matched words in query order, each once (case aside)."""
    labels: dict[str, str] = {}
    for _, label in sorted(hits, key=_column):
        labels.setdefault(label.casefold(), label)
    return list(labels.values())


_column = itemgetter(0)


def compile_matcher(root: Node) -> Matcher:
    fixed = _fixed(root)
    return Matcher(holds(root), _reporter(root, fixed), fixed)


def _reporter(root: Node, fixed: tuple[str, ...] | None) -> Report:
    """The query's report, the cheapest way its shape allows."""
    if fixed is not None:
        return lambda doc: list(fixed)
    if isinstance(root, Or) and all(_reports_itself(c) for c in root.children):
        # Alternatives that each report their own label, in query order: those present
        # are the report, unless two labels could be one (then the general way).
        children = sorted(root.children, key=lambda c: c.column)
        labels = [c.label for c in children]  # type: ignore[union-attr]
        if len({label.casefold() for label in labels}) == len(labels):
            if all(_plain_term(c) for c in children):
                words = tuple((c.word, c.label) for c in children if _plain_term(c))
                return lambda doc: [label for word, label in words if word in doc.words]
            options = tuple((holds(c), label) for c, label in zip(children, labels))
            return lambda doc: [label for present, label in options if present(doc)]
    gather = collect(root)

    def report(doc: Document) -> list[str]:
        found: list[Hit] = []
        gather(doc, found)
        return [found[0][1]] if len(found) == 1 else _report(found)
    return report


def _reports_itself(node: Node) -> bool:
    """A word, or a phrase without a prefix: reports its label, once, when it holds."""
    return isinstance(node, Term) or (isinstance(node, Phrase) and not _has_stem(node))


def _fixed(root: Node) -> tuple[str, ...] | None:
    """The report of a query that reports all its positive terms whenever it matches (no
    OR, prefix or NEAR): what Matcher.match would make of them, made once."""
    hits: list[Hit] = []

    def visit(node: Node) -> bool:
        if isinstance(node, (Or, Near, Prefix)) or (isinstance(node, Phrase) and _has_stem(node)):
            return False
        if isinstance(node, (Term, Phrase)):
            hits.append((node.column, node.label))
        return not isinstance(node, And) or all(visit(child) for child in node.children)

    if not visit(root) or not hits:
        return None
    return tuple(_report(hits))


def holds(node: Node) -> Holds:
    """Whether `node` holds for a document."""
    if isinstance(node, Term):
        return _term_holds(node)
    if isinstance(node, Prefix):
        return _prefix_holds(node)
    if isinstance(node, Phrase):
        if node.exact is None and not _has_stem(node):
            return _plain_phrase_holds(node)
        return _remembered(node, _phrase_holds)
    if isinstance(node, And):
        return _all([holds(child) for child in node.children])
    if isinstance(node, Or):
        return _any([holds(child) for child in node.children])
    if isinstance(node, Not):
        inner = holds(node.child)
        return lambda doc: not inner(doc)
    if isinstance(node, Near):
        return _remembered(node, _near_holds)
    raise TypeError(f"not a query node: {node!r}")


@lru_cache(maxsize=100_000)
def _remembered(node: Phrase | Near, check: Callable[[Phrase | Near], Holds]) -> Holds:
    """`check(node)`, with its answer kept in the document for every topic that has an
    equal node: topics by the thousand share their phrases. One function per distinct
    node (hence the cache), and that function is the key of its answer."""
    compute = check(node)

    def remembered(doc: Document) -> bool:
        memo = doc.memo
        held = memo.get(remembered)
        if held is None:
            held = memo[remembered] = compute(doc)
        return held
    return remembered


def collect(node: Node) -> Collect:
    """Appends the hits of `node`, which must hold for the document."""
    if isinstance(node, (Term, Phrase)) and not _has_stem(node):
        # A word, or a phrase without a prefix, reports itself, once.
        hit = (node.column, node.label)
        return lambda doc, found: found.append(hit)
    if isinstance(node, (Prefix, Phrase)):
        return lambda doc, found: found.extend(_leaf_hits(node, doc))
    if isinstance(node, And):
        parts = [collect(child) for child in node.children]

        def collect_all(doc: Document, found: list[Hit]) -> None:
            for part in parts:
                part(doc, found)
        return collect_all
    if isinstance(node, Or):
        # Every present alternative is reported, not just the first; in any order, as the
        # report sorts by column. Words, the commonest alternatives, are checked in a line.
        words = tuple((c.word, (c.column, c.label)) for c in node.children if _plain_term(c))
        options = [(holds(c), collect(c)) for c in node.children if not _plain_term(c)]

        def collect_present(doc: Document, found: list[Hit]) -> None:
            if words:
                held = doc.words
                found += [hit for word, hit in words if word in held]
            for present, part in options:
                if present(doc):
                    part(doc, found)
        return collect_present
    if isinstance(node, Not):
        return lambda doc, found: None
    if isinstance(node, Near):
        return lambda doc, found: found.extend(_near_hits(node, doc))
    raise TypeError(f"not a query node: {node!r}")


def _all(parts: list[Holds]) -> Holds:
    if len(parts) == 2:
        first, second = parts
        return lambda doc: first(doc) and second(doc)
    if len(parts) == 3:
        first, second, third = parts
        return lambda doc: first(doc) and second(doc) and third(doc)
    return lambda doc: all(part(doc) for part in parts)


def _any(parts: list[Holds]) -> Holds:
    if len(parts) == 2:
        first, second = parts
        return lambda doc: first(doc) or second(doc)
    if len(parts) == 3:
        first, second, third = parts
        return lambda doc: first(doc) or second(doc) or third(doc)
    return lambda doc: any(part(doc) for part in parts)


# --- leaves ---------------------------------------------------------------------------


def _term_holds(term: Term) -> Holds:
    word, field = term.word, term.field
    if term.exact is not None:
        return lambda doc: any(spans(term, tokens) for tokens in _fields(doc, field))
    if field is None:
        return lambda doc: word in doc.words
    return lambda doc: word in doc.field(field).wordset


def _prefix_holds(prefix: Prefix) -> Holds:
    stem, field = prefix.stem, prefix.field
    if prefix.exact is not None:
        return lambda doc: has_prefix(doc.vocabulary, stem) and any(
            spans(prefix, tokens) for tokens in _fields(doc, field))
    if field is None:
        return lambda doc: has_prefix(doc.vocabulary, stem)
    return lambda doc: has_prefix(doc.field(field).vocabulary, stem)


def _plain_phrase_holds(phrase: Phrase) -> Holds:
    # A search of the field's text (in C) costs less than remembering its answer.
    needle, field = f" {' '.join(phrase.words)} ", phrase.field
    if field is None:
        return lambda doc: needle in doc.title.joined or needle in doc.summary.joined
    return lambda doc: needle in doc.field(field).joined


def _phrase_holds(phrase: Phrase | Near) -> Holds:
    assert isinstance(phrase, Phrase)
    plain = tuple(w for w in phrase.words if not w.endswith("*"))
    field = phrase.field

    def phrase_holds(doc: Document) -> bool:
        # Most phrases fail for want of a word: cheaper to ask that first.
        words = doc.words
        for word in plain:
            if word not in words:
                return False
        return any(next(_phrase_spans(phrase, tokens), None) for tokens in _fields(doc, field))
    return phrase_holds


def _plain_term(node: Node) -> TypeGuard[Term]:
    """A word, in either field, of any case: it holds when it is in doc.words."""
    return isinstance(node, Term) and node.exact is None and node.field is None


def _has_stem(leaf: Leaf) -> bool:
    return isinstance(leaf, Prefix) or (isinstance(leaf, Phrase) and any(w.endswith("*") for w in leaf.words))


def _fields(doc: Document, field: str | None) -> tuple[FieldTokens, ...]:
    return doc.fields if field is None else (doc.field(field),)


class Span(NamedTuple):
    """Where a leaf occurs in one field: first and last word positions, inclusive."""

    start: int
    end: int
    column: int
    label: str


def spans(leaf: Leaf, tokens: FieldTokens) -> list[Span]:
    """Occurrences of `leaf` in `tokens`, in order; none when it is restricted to another field."""
    if leaf.field not in (None, tokens.name):
        return []
    if isinstance(leaf, Term):
        return [Span(p, p, leaf.column, leaf.label) for p in tokens.find(leaf.word, leaf.exact)]
    if isinstance(leaf, Prefix):
        exact = None if leaf.exact is None else leaf.exact + "*"
        return [Span(p, p, leaf.column, tokens.originals[p]) for p in tokens.find(leaf.stem + "*", exact)]
    return list(_phrase_spans(leaf, tokens))


def _phrase_spans(phrase: Phrase, tokens: FieldTokens) -> Iterator[Span]:
    if phrase.field not in (None, tokens.name):
        return
    words = phrase.words
    exact = phrase.exact or (None,) * len(words)
    last = len(words) - 1
    for p in tokens.find(words[0], exact[0]):
        if all(tokens.fits(p + k, words[k], exact[k]) for k in range(1, last + 1)):
            label = " ".join(tokens.originals[p : p + last + 1]) if _has_stem(phrase) else phrase.label
            yield Span(p, p + last, phrase.column, label)


def _leaf_hits(leaf: Leaf, doc: Document) -> list[Hit]:
    """Every occurrence's report, title first; for a prefix, the item's words."""
    if isinstance(leaf, Prefix) and not starting(doc.vocabulary, leaf.stem):
        return []
    return [(s.column, s.label) for tokens in doc.fields for s in spans(leaf, tokens)]


# --- NEAR -----------------------------------------------------------------------------


def _near_holds(near: Phrase | Near) -> Holds:
    assert isinstance(near, Near)
    left = _any([holds(leaf) for leaf in near.left]) if len(near.left) > 1 else holds(near.left[0])
    right = _any([holds(leaf) for leaf in near.right]) if len(near.right) > 1 else holds(near.right[0])
    return lambda doc: left(doc) and right(doc) and bool(_near_hits(near, doc))


def _near_hits(near: Near, doc: Document) -> list[Hit]:
    found: list[Hit] = []
    for tokens in doc.fields:
        rights = [s for leaf in near.right for s in spans(leaf, tokens)]
        if not rights:
            continue
        for a in (s for leaf in near.left for s in spans(leaf, tokens)):
            for b in rights:
                if 1 <= _gap(a, b) <= near.distance:
                    found += [(a.column, a.label), (b.column, b.label)]
    return found


def _gap(a: Span, b: Span) -> int:
    """Position difference between the nearest words of two spans; 0 if they overlap."""
    if a.end < b.start:
        return b.start - a.end
    if b.end < a.start:
        return a.start - b.end
    return 0
