"""The alert snippet: the item text around the first match, found again from the stored
title, summary and matched words."""

from __future__ import annotations

import pytest

from monitor.snippet import SNIPPET_LIMIT, snippet

LONG = ("Delegations met in Istanbul on Friday for a second day. " * 4
        + "Then Russia's envoy said that peace talks would resume next week, according to two people "
        + "familiar with the matter. " + "Markets were calm and nothing else happened. " * 6)


def test_a_short_title_match_is_the_title() -> None:
    found = snippet("Putin and Zelensky meet", LONG, ["Zelensky"])
    assert (found.text, found.field) == ("Putin and Zelensky meet", "title")


def test_a_summary_match_is_cut_around_it_on_word_boundaries() -> None:
    found = snippet("Talks resume", LONG, ["peace talks", "Russia"])
    assert found.field == "summary"
    assert len(found.text) <= SNIPPET_LIMIT
    assert found.text.startswith("…") and found.text.endswith("…")
    assert "Russia's envoy said that peace talks" in found.text  # the first match, Russia, and what follows
    assert all(word in LONG for word in found.text.strip("…").split())  # no word cut in half


@pytest.mark.parametrize(("matched", "text", "expected"), [
    (["Russia"], "RUSSIA'S envoy arrives", "RUSSIA'S"),          # case, possessive
    (["Zelensky"], "Visit of Zélensky", "Zélensky"),            # diacritics
    (["cease-fire"], "A cease fire holds", "cease fire"),        # punctuation inside a phrase
    (["Negotiators"], "negotiators met", "negotiators"),        # a prefix reports the item's word
])
def test_matched_words_are_found_as_queries_find_them(matched: list[str], text: str, expected: str) -> None:
    assert expected in snippet("", text + " " + "filler " * 40, matched).text


def test_the_same_case_is_preferred() -> None:
    text = "Sanctions hurt us, officials say. " * 3 + "Then US sanctions widened. " + "More. " * 30
    found = snippet("", text, ["US"])
    assert "US sanctions widened" in found.text


def test_without_a_matched_word_it_is_the_start_of_the_summary() -> None:
    assert snippet("Feed failing", "12 polls in a row have failed.", []).text == "12 polls in a row have failed."
    assert snippet("Only a title", "  ", ["nowhere"]).text == "Only a title"
    long = snippet("T", "word " * 100, ["absent"])
    assert long.field is None and len(long.text) <= SNIPPET_LIMIT and long.text.endswith("…")


def test_white_space_is_one_line() -> None:
    assert snippet("", "Peace\n\n talks\tresume", ["talks"]).text == "Peace talks resume"
