"""The query index: what each query requires, which topics an item meets, and that the
result is always that of matching every topic in config order."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.query import Not, Or, Query, Term, compile_query, prepare
from monitor.runtime import Runtime
from monitor.topic_index import TopicIndex, requirement


def groups(query: str) -> set[frozenset[str]]:
    return set(requirement(compile_query(query).root))


@pytest.mark.parametrize(("query", "expected"), [
    ("Putin", [{"putin"}]),
    ("negotiat*", [{"negotiat*"}]),
    ('"peace talks"', [{"peace"}, {"talks"}]),
    ("{New START}", [{"new"}, {"start"}]),
    ("title:Putin", [{"title:putin"}]),
    ("summary:Putin", [{"putin"}]),  # the summary is most of an item: no keys of its own
    ("title:sanction*", [{"title:sanction*"}]),
    ("Putin OR Zelensky", [{"putin", "zelensky"}]),
    ('Putin OR "peace negotiations"', [{"putin", "negotiations"}]),  # the longer, rarer word stands for it
    ("Putin -war", [{"putin"}]),
    ("peace (NOT war OR talks)", [{"peace"}]),  # an OR with a NOT in it requires nothing
    ("(Putin OR Kremlin) NEAR/3 talk*", [{"putin", "kremlin"}, {"talk*"}]),
    ('("peace deal" OR ceasefire) AND (Russia OR Putin)', [{"peace", "ceasefire"}, {"russia", "putin"}]),
])
def test_what_a_query_requires(query: str, expected: list[set[str]]) -> None:
    assert groups(query) == {frozenset(g) for g in expected}


def test_an_item_meets_only_the_topics_whose_words_it_holds() -> None:
    queries = ["Putin", '"peace talks"', "title:Zelensky", "negotiat* Russia", "war -Gaza", "Kremlin NEAR/2 talks"]
    index = TopicIndex((q, compile_query(q)) for q in queries)
    doc = prepare("Zelensky speaks", "Negotiators met; talks on peace with Russia go on, says the Kremlin")
    # "peace talks" is a candidate (both words are there) but not a match; Putin, war and
    # the Kremlin pair need a word the item lacks or an order it does not have.
    assert [queries[i] for i in index.candidates(doc)] == queries[1:4] + ["Kremlin NEAR/2 talks"]
    assert index.matches(doc) == [("title:Zelensky", ["Zelensky"]), ("negotiat* Russia", ["Negotiators", "Russia"])]
    summary_only = prepare("Update", "Zelensky speaks")
    assert "title:Zelensky" not in [queries[i] for i in index.candidates(summary_only)]


def test_prefixes_are_found_from_any_word_they_start_and_remembered() -> None:
    index = TopicIndex([("sanctions", compile_query("sanction*")), ("sanctioned", compile_query("sanctioned*"))])
    assert index.matches(prepare("Sanctions on oil", "")) == [("sanctions", ["Sanctions"])]
    assert index.matches(prepare("", "Russia sanctioned again")) == [
        ("sanctions", ["sanctioned"]), ("sanctioned", ["sanctioned"])]
    assert index.matches(prepare("Sanctions on oil", "")) == [("sanctions", ["Sanctions"])]  # from memory


def test_results_come_in_topic_order_and_skipped_topics_are_left_out() -> None:
    queries = ["peace", "talks", "peace talks", "Putin"]
    index = TopicIndex((i, compile_query(q)) for i, q in enumerate(queries))
    doc = prepare("Talks on peace", "Putin")
    assert [i for i, _ in index.matches(doc)] == [0, 1, 2, 3]
    assert [i for i, _ in index.matches(doc, skip=frozenset({1, 3}))] == [0, 2]


def test_a_query_that_requires_no_word_is_checked_for_every_item() -> None:
    # compile_query refuses such queries; a Query made by hand still gets the right answer.
    odd = Query("NOT war OR peace", Or((Not(Term("war", "war")), Term("peace", "peace"))))
    index = TopicIndex([("odd", odd), ("putin", compile_query("Putin"))])
    assert index.always == (0,)
    assert index.candidates(prepare("Nothing here", "")) == [0]
    assert index.matches(prepare("Nothing here", "")) == []  # holds, but reports no word: no alert
    assert index.matches(prepare("war", "")) == []


def test_the_runtime_routes_topics_to_the_feeds_they_watch(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("""
[[webhooks]]
name = "ops"
url = "https://hooks.example/x"

[[feeds]]
url = "https://a.example/rss"
name = "A"
tags = ["wire"]

[[feeds]]
url = "https://b.example/rss"

[[topics]]
name = "everywhere"
query = "Putin"

[[topics]]
name = "wire"
query = "Putin"
feeds = ["tag:wire"]

[[topics]]
name = "b-by-url"
query = "Putin"
feeds = ["https://b.example/rss"]

[[topics]]
name = "a-by-name"
query = "Putin"
feeds = ["A"]
""")
    runtime = Runtime.of(load_config(path))
    doc = prepare("Putin", "")

    def topics(url: str) -> list[str] | None:
        skipped = runtime.topics_skipped(url)
        return None if skipped is None else [t.name for t, _ in runtime.topic_index.matches(doc, skipped)]
    assert topics("https://a.example/rss") == ["everywhere", "wire", "a-by-name"]
    assert topics("https://b.example/rss") == ["everywhere", "b-by-url"]
    assert topics("https://gone.example/rss") == ["everywhere"]  # dropped by a reload while in flight
