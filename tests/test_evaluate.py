"""Scoring topic queries against labelled items, on invented headlines and on the corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.config import TopicConfig, load_config
from monitor.evaluate import Score, misses, read_items, read_labels, score_topics
from monitor.query import compile_query

REPO = Path(__file__).resolve().parent.parent

# Invented headlines: (id, title, summary).
ITEMS = [
    ("a1", "Envoys meet in Geneva to discuss a ceasefire in Ukraine", ""),
    ("a2", "Ceasefire in Gaza holds after a week of talks", "Mediators report calm."),
    ("a3", "Kyiv weighs a truce offer from Moscow", ""),
    ("a4", "Shelling breaks the Ukraine ceasefire overnight", "Both sides trade blame."),
    ("a5", "New tariffs on Canadian lumber", ""),
    ("a6", "EU agrees tariffs on Russian fertiliser", ""),
    ("zz", "Unlabelled: a Ukraine ceasefire and Russian tariffs", ""),
]
LABELS = {
    "a1": {"truce": True, "tariffs": False},
    "a2": {"truce": False, "tariffs": False},
    "a3": {"truce": True, "tariffs": False},
    "a4": {"truce": False, "tariffs": False},
    "a5": {"truce": False, "tariffs": False},
    "a6": {"truce": False, "tariffs": True},
}
TOPICS = [
    TopicConfig(name="truce", query=compile_query("ceasefire AND Ukraine")),
    TopicConfig(name="tariffs", query=compile_query("tariff* AND (Russia* OR Canad*)")),
]


def test_counts_every_labelled_item_once_per_topic() -> None:
    truce, tariffs = score_topics(ITEMS, LABELS, TOPICS)
    assert truce == Score("truce", tp=1, fp=1, fn=1, tn=3)
    assert tariffs == Score("tariffs", tp=1, fp=1, fn=0, tn=4)


def test_rates() -> None:
    truce, tariffs = score_topics(ITEMS, LABELS, TOPICS)
    assert (truce.precision, truce.recall, truce.f1) == (0.5, 0.5, 0.5)
    assert (tariffs.precision, tariffs.recall) == (0.5, 1.0)
    assert tariffs.f1 == pytest.approx(2 / 3)
    assert truce.positives == 2


def test_rates_with_nothing_matched_or_labelled() -> None:
    assert Score("t", tp=0, fp=0, fn=3, tn=5).precision == 1.0
    assert Score("t", tp=0, fp=0, fn=3, tn=5).f1 == 0.0
    assert Score("t", tp=0, fp=2, fn=0, tn=5).recall == 1.0


def test_misses_lists_wrong_ids_in_item_order() -> None:
    truce, tariffs = misses(ITEMS, LABELS, TOPICS)
    assert (truce.false_positives, truce.false_negatives) == (("a4",), ("a3",))
    assert (tariffs.false_positives, tariffs.false_negatives) == (("a5",), ())


def test_a_labelled_item_missing_from_the_items_is_an_error() -> None:
    with pytest.raises(ValueError, match="labelled items not among the items"):
        score_topics(ITEMS[1:], LABELS, TOPICS)


def test_a_topic_without_labels_is_an_error() -> None:
    other = [TopicConfig(name="other", query=compile_query("x"))]
    with pytest.raises(ValueError, match="no label for topic other"):
        score_topics(ITEMS, LABELS, other)


def test_read_labels_skips_comments() -> None:
    lines = ["# how these were made", "id\ttruce\ttariffs", "a1\t1\t0", "a6\t0\t1", ""]
    assert read_labels(lines) == {
        "a1": {"truce": True, "tariffs": False},
        "a6": {"truce": False, "tariffs": True},
    }


def test_read_items_cleans_text_like_the_daemon() -> None:
    lines = [
        json.dumps({"id": "h", "title": "Talks &amp; a truce", "summary": "<p>In <b>Kyiv</b></p>"}),
        json.dumps({"id": "n", "title": "No summary", "summary": "None"}),
        json.dumps({"id": "m", "title": "Null summary", "summary": None}),
    ]
    items = list(read_items(lines))
    assert items[0][0] == "h" and items[0][1] == "Talks & a truce"
    assert "<" not in items[0][2] and "Kyiv" in items[0][2]
    assert items[1][2] == items[2][2] == ""


# (precision, recall) floors a little below what config.example.toml measured on
# labels-dev (README, "The example topics"): peace-talks 0.903 / 0.867, sanctions
# 0.851 / 0.988, nuclear 0.943 / 1.000. They catch regressions in the query engine, the
# text cleaning or the example queries, not the odd relabelled item.
FLOORS = {
    "peace-talks": (0.85, 0.82),
    "russia-sanctions-tariffs": (0.80, 0.95),
    "nuclear-arms-control": (0.90, 0.95),
}


def test_example_topics_on_the_labelled_corpus(corpus: Path) -> None:
    headlines = corpus / "headlines"
    config = load_config(REPO / "config.example.toml")
    items = read_items(_lines(headlines / "items.jsonl"))
    labels = read_labels(_lines(headlines / "labels-dev.tsv"))
    scores = {s.topic: s for s in score_topics(items, labels, config.topics)}
    assert scores.keys() == FLOORS.keys()
    for name, (precision, recall) in FLOORS.items():
        assert scores[name].precision >= precision, scores[name]
        assert scores[name].recall >= recall, scores[name]


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        pytest.skip(f"{path} not found in the shared corpus")
    return path.read_text(encoding="utf-8").splitlines()
