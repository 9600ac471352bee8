"""Properties of the query language beyond examples (hypothesis): the parser fails only with
a clear query error, printing a query reads back as the same query, and the matcher, with
and without the query index, agrees with a naive evaluator written here from the README."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from monitor.errors import QuerySyntaxError
from monitor.query import (
    MAX_DEPTH,
    And,
    Near,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Query,
    Term,
    compile_query,
    prepare,
)
from monitor.topic_index import TopicIndex
from monitor.words import tokenise

FAST = settings(max_examples=150, deadline=1000, suppress_health_check=[HealthCheck.too_slow])

# --- the tokeniser: the fast one gives exactly the words of the plain one -------------------

_PLAIN_POSSESSIVE = re.compile(r"(?<=[^\W_])'s(?![^\W_])", re.IGNORECASE)


def plain_words(text: str) -> list[str]:
    """How words were found before prepare() was made fast: every step on every character."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if unicodedata.category(c)[0] != "M")
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\u2018", "'").replace("\u2019", "'").replace("\u02bc", "'")
    return re.findall(r"[^\W_]+", _PLAIN_POSSESSIVE.sub("", text))


TRICKY = "aAzZ09 _-'’‘ʼ\"“”–—.,:;/\u200b\u200d\u00a0éÉe\u0301ßẞﬁＮİıſŉǅПутинйё한국\u1100\u1161£€©\u0308sS"
texts = st.text(alphabet=st.sampled_from(TRICKY), max_size=40) | st.text(max_size=40)


@FAST
@given(texts)
def test_tokenising_gives_the_words_of_the_plain_rules(text: str) -> None:
    words = plain_words(text)
    assert tokenise(text) == words
    doc = prepare(text, "")
    assert list(doc.title.words) == [w.casefold() for w in words]
    assert list(doc.title.originals) == words
    assert doc.words == frozenset(w.casefold() for w in words)


# --- the parser ---------------------------------------------------------------------------

SYNTAX = ['(', ')', '"', '“', '”', '{', '}', '-', '*', ' ', 'AND', 'OR', 'NOT', 'NEAR/', 'NEAR/3', 'NEAR',
          'title:', 'summary:', 'body:', 'peace', 'talks', 'Putin', "Russia's", 'négociat', '0', '&']
query_texts = st.lists(st.sampled_from(SYNTAX), max_size=14).map(" ".join) | st.text(max_size=30)


@FAST
@given(query_texts)
def test_the_parser_raises_only_a_query_error_that_points_into_the_query(text: str) -> None:
    try:
        query = compile_query(text)
    except QuerySyntaxError as e:
        assert e.query == text and 1 <= e.column <= len(text) + 1 and e.message
        return
    assert compile_query(str(query)).root == query.root


@pytest.mark.parametrize("text", ["(" * 5000 + "a" + ")" * 5000, "title:" * 5000 + "a", "(" * 100000],
                         ids=["groups", "fields", "unclosed"])
def test_deep_nesting_is_a_query_error_not_a_crash(text: str) -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        compile_query(text)
    assert f"nested more than {MAX_DEPTH} deep" in raised.value.message or "unclosed" in raised.value.message


def test_fifty_levels_still_parse() -> None:
    query = compile_query("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH)
    assert query.root == Term("a", "a")


# Random trees, written out with the syntax's variants (juxtaposition, "-", curly quotes,
# field groups, spare parentheses), are what a user might type.
WORDS = ["peace", "talks", "Putin", "Russia", "war", "US", "cease", "fire"]


@st.composite
def leaf_text(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["word", "phrase", "prefix", "exact", "hyphen"]))
    word = draw(st.sampled_from(WORDS))
    if kind == "word":
        return word + draw(st.sampled_from(["", "'s"]))
    if kind == "prefix":
        return word[: draw(st.integers(2, len(word)))] + "*"
    if kind == "hyphen":
        return f"{word}-{draw(st.sampled_from(WORDS))}"
    words = " ".join(draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=3)))
    if kind == "exact":
        return "{" + words + "}"
    return draw(st.sampled_from(['"{}"', "\u201c{}\u201d"])).format(words)


def query_text(depth: int = 3) -> st.SearchStrategy[str]:
    leaf = st.tuples(st.sampled_from(["", "", "", "title:", "summary:"]), leaf_text()).map("".join)
    if depth == 0:
        return leaf

    def join(parts: list[str], op: str) -> str:
        return f" {op} ".join(parts) if op != " " else " ".join(parts)
    inner = query_text(depth - 1)
    group = inner.map(lambda q: f"({q})")
    return st.one_of(
        leaf,
        st.tuples(st.lists(inner, min_size=2, max_size=3), st.sampled_from(["AND", " ", "OR", "OR"])).map(
            lambda a: join(*a)),
        st.tuples(st.sampled_from(["NOT ", "-"]), st.one_of(leaf, group)).map("".join),
        st.tuples(st.one_of(leaf, st.lists(leaf, min_size=2, max_size=3).map(lambda x: f"({' OR '.join(x)})")),
                  st.integers(1, 4), leaf).map(lambda a: f"{a[0]} NEAR/{a[1]} {a[2]}"),
        st.tuples(st.sampled_from(["title:", "summary:"]), group).map("".join),
    )


def compiled(text: str) -> Query:
    try:
        return compile_query(text)
    except QuerySyntaxError:
        assume(False)
        raise


@FAST
@given(query_text())
def test_printing_a_query_reads_back_as_the_same_query(text: str) -> None:
    query = compiled(text)
    again = compile_query(str(query))
    assert again.root == query.root
    assert str(again) == str(query)  # the canonical text is a fixed point


# --- matching, against a naive evaluator --------------------------------------------------


def field_words(text: str) -> tuple[list[str], list[str]]:
    words = plain_words(text)
    return [w.casefold() for w in words], words


def word_fits(folded: str, original: str, word: str, exact: str | None) -> bool:
    if word.endswith("*"):
        ok = folded.startswith(word[:-1])
        return ok and (exact is None or original.startswith(exact[:-1]))
    return folded == word and (exact is None or original == exact)


def occurrences(leaf: Node, name: str, text: str) -> list[tuple[int, int, str]]:
    """(first, last, label) of every place the leaf occurs in one field, by trying each position."""
    if getattr(leaf, "field", None) not in (None, name):
        return []
    folded, originals = field_words(text)
    if isinstance(leaf, Term):
        pattern, exact, label = [leaf.word], [leaf.exact], leaf.label
    elif isinstance(leaf, Prefix):
        pattern, exact, label = [leaf.stem + "*"], [None if leaf.exact is None else leaf.exact + "*"], None
    else:
        assert isinstance(leaf, Phrase)
        pattern, exact = list(leaf.words), list(leaf.exact or [None] * len(leaf.words))
        label = None if any(w.endswith("*") for w in leaf.words) else leaf.label
    found = []
    for start in range(len(folded) - len(pattern) + 1):
        if all(word_fits(folded[start + k], originals[start + k], pattern[k], exact[k]) for k in range(len(pattern))):
            end = start + len(pattern) - 1
            found.append((start, end, label or " ".join(originals[start : end + 1])))
    return found


def reference_hits(node: Node, fields: dict[str, str]) -> list[tuple[int, str]] | None:
    if isinstance(node, (Term, Prefix, Phrase)):
        hits = [(node.column, label) for name, text in fields.items() for _, _, label in occurrences(node, name, text)]
        return hits or None
    if isinstance(node, And):
        hits = []
        for child in node.children:
            got = reference_hits(child, fields)
            if got is None:
                return None
            hits += got
        return hits
    if isinstance(node, Or):
        present = [got for child in node.children if (got := reference_hits(child, fields)) is not None]
        return [hit for got in present for hit in got] if present else None
    if isinstance(node, Not):
        return [] if reference_hits(node.child, fields) is None else None
    assert isinstance(node, Near)
    hits = []
    for name, text in fields.items():
        for a_leaf in node.left:
            for a in occurrences(a_leaf, name, text):
                for b_leaf in node.right:
                    for b in occurrences(b_leaf, name, text):
                        gap = b[0] - a[1] if a[1] < b[0] else a[0] - b[1] if b[1] < a[0] else 0
                        if 1 <= gap <= node.distance:
                            hits += [(a_leaf.column, a[2]), (b_leaf.column, b[2])]
    return hits or None


def reference_match(query: Query, title: str, summary: str) -> list[str] | None:
    hits = reference_hits(query.root, {"title": title, "summary": summary})
    if hits is None:
        return None
    labels: dict[str, str] = {}
    for _, label in sorted(hits, key=lambda hit: hit[0]):
        labels.setdefault(label.casefold(), label)
    return list(labels.values())


# The query words, in the forms the README says they match or not, so that matches are common.
TEXT_WORDS = ["peace", "Peace", "talks", "TALKS", "Putin", "Putin's", "russia", "Russia’s", "war", "warsaw", "US",
              "us", "cease-fire", "cease", "fire", "Péace", "talk", "Puti", "and", ","]
item_texts = st.lists(st.sampled_from(TEXT_WORDS), max_size=14).map(" ".join)


@settings(FAST, max_examples=300)
@given(query_text(2), item_texts, item_texts)
def test_matching_agrees_with_the_naive_evaluator(text: str, title: str, summary: str) -> None:
    query = compiled(text)
    assert query.match(prepare(title, summary)) == reference_match(query, title, summary)


@settings(FAST, max_examples=80)
@given(st.lists(query_text(2), min_size=1, max_size=8), st.lists(st.tuples(item_texts, item_texts), max_size=6))
def test_the_index_gives_what_matching_every_topic_gives(texts: list[str], items: list[tuple[str, str]]) -> None:
    queries = []
    for text in texts:
        try:
            queries.append(compile_query(text))
        except QuerySyntaxError:
            continue
    assume(queries)
    index = TopicIndex((f"t{i}", q) for i, q in enumerate(queries))
    for title, summary in items:
        doc = prepare(title, summary)
        every = [(f"t{i}", m) for i, q in enumerate(queries) if (m := q.match(doc))]
        naive = [(f"t{i}", m) for i, q in enumerate(queries) if (m := reference_match(q, title, summary))]
        assert index.matches(doc) == every == naive
        candidates = index.candidates(doc)
        assert candidates == sorted(set(candidates))
        assert {f"t{i}" for i in candidates} >= {name for name, _ in every}
