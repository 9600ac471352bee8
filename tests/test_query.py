"""Topic query language: what matches, what is reported, and where errors point."""

from __future__ import annotations

import pytest

from monitor.errors import QuerySyntaxError
from monitor.query import And, Near, Not, Or, Phrase, Prefix, Term, compile_query, prepare

MATCHES = [
    # words on boundaries, normalisation
    ("war", "War in the east", "", ["war"]),
    ("war", "Warsaw summit opens", "", None),
    ("war", "", "the post-war order", ["war"]),
    ("war", "Postwar order", "", None),
    ("warsaw", "In Warsaw today", "", ["warsaw"]),
    ("putin", "PUTIN SPEAKS", "", ["putin"]),
    ("Russia", "Russia's envoy arrives", "", ["Russia"]),
    ("Russia", "RUSSIA'S ENVOY", "", ["Russia"]),
    ("Russia", "Russia\u2019s envoy arrives", "", ["Russia"]),
    ("Russia's", "Russia sends envoy", "", ["Russia's"]),
    ("Russia\u2019s", "Envoy of Russia", "", ["Russia\u2019s"]),
    ("envoy", "Russia's envoy", "", ["envoy"]),
    ("s", "Russia's envoy", "", None),
    ("Zelensky", "Z\u00e9lensky visits Kyiv", "", ["Zelensky"]),
    ("Z\u00e9lensky", "ZELENSKY VISITS", "", ["Z\u00e9lensky"]),
    ("Zelensky", "Zelenskyy visits", "", None),
    ("Zelenskyy", "Zelenskyy visits", "", ["Zelenskyy"]),
    ("Zelenskyy", "Zelensky's visit", "", None),
    ("Zelensky", "Ze\u0301lensky decomposed", "", ["Zelensky"]),
    ("\u041f\u0443\u0442\u0438\u043d", "\u041f\u0423\u0422\u0418\u041d \u0437\u0430\u044f\u0432\u0438\u043b", "", ["\u041f\u0443\u0442\u0438\u043d"]),
    ("nato", "\uff2e\uff21\uff34\uff2f summit", "", ["nato"]),
    ("final", "The \ufb01nal round", "", ["final"]),
    ("strasse", "Stra\u00dfe closed", "", ["strasse"]),
    ("foo", "foo_bar", "", ["foo"]),
    ("2025", "In 2025, talks", "", ["2025"]),
    ("kyiv", "Kyiv/Kiev", "", ["kyiv"]),
    # phrases
    ('"peace talks"', "Peace talks resume", "", ["peace talks"]),
    ('"peace talks"', "Talks on peace", "", None),
    ('"peace talks"', "Peace and talks", "", None),
    ('"peace talks"', "Peace", "talks", None),
    ('"peace talks"', "", "new peace talks.", ["peace talks"]),
    ('"cease fire"', "A cease-fire holds", "", ["cease fire"]),
    ("cease-fire", "A cease fire holds", "", ["cease-fire"]),
    ("cease-fire", "A ceasefire holds", "", None),
    ('"Russia talks"', "Russia's talks", "", ["Russia talks"]),
    ('"peace   talks"', "peace talks", "", ["peace talks"]),
    ("\u201cpeace talks\u201d", "Peace talks", "", ["peace talks"]),
    ('"Putin"', "Putin speaks", "", ["Putin"]),
    # prefixes
    ("negotiat*", "Negotiators meet", "", ["Negotiators"]),
    ("negotiat*", "Talks", "negotiations and negotiators", ["negotiations", "negotiators"]),
    ("negotiat*", "Negotiations", "more negotiations", ["Negotiations"]),
    ("negotiat*", "Renegotiate the deal", "", None),
    ("talk*", "talk", "", ["talk"]),
    ('"peace negotiat*"', "Peace negotiations open", "", ["Peace negotiations"]),
    ('"peace negotiat*"', "negotiations for peace", "", None),
    # AND, juxtaposition, OR, precedence
    ("peace AND talks", "talks about peace", "", ["peace", "talks"]),
    ("talks peace", "peace talks", "", ["talks", "peace"]),
    ("peace talks", "peace", "", None),
    ("peace talks", "peace", "talks", ["peace", "talks"]),
    ("Putin OR Zelensky", "Zelensky speaks", "", ["Zelensky"]),
    ("Putin OR Zelensky", "Putin and Zelensky", "", ["Putin", "Zelensky"]),
    ("Zelensky OR Putin", "Putin and Zelensky", "", ["Zelensky", "Putin"]),
    ("Putin OR Zelensky", "Biden speaks", "", None),
    ("Putin OR peace talks", "Putin", "", ["Putin"]),
    ("Putin OR peace talks", "peace", "", None),
    ("Putin OR peace talks", "peace talks", "", ["peace", "talks"]),
    ("peace talks OR Putin", "talks", "", None),
    ("(Putin OR peace) talks", "peace", "", None),
    ("(Putin OR peace) talks", "Putin talks", "", ["Putin", "talks"]),
    ("Putin OR putin", "putin", "", ["Putin"]),
    ("(peace talks) OR (talks Russia)", "Russia peace talks", "", ["peace", "talks", "Russia"]),
    # NOT, -
    ("NOT war peace", "peace", "", ["peace"]),
    ("NOT war peace", "peace", "war", None),
    ("peace NOT war", "peace", "", ["peace"]),
    ("peace NOT war", "war and peace", "", None),
    ("peace -war", "peace now", "", ["peace"]),
    ("peace -war", "peace now", "no more war", None),
    ("peace -warsaw", "peace", "war", ["peace"]),
    ("peace -(war OR conflict)", "peace", "conflict ends", None),
    ("peace -(war OR conflict)", "peace", "", ["peace"]),
    ('peace -"civil war"', "peace", "war", ["peace"]),
    ('peace -"civil war"', "peace", "civil war", None),
    ("peace OR (talks -war)", "peace talks", "war", ["peace"]),
    ("peace OR (talks -war)", "talks", "", ["talks"]),
    ("peace (NOT war OR talks)", "peace", "", ["peace"]),
    ("peace (NOT war OR talks)", "peace war", "", None),
    ("peace (NOT war OR talks)", "peace war talks", "", ["peace", "talks"]),
    ("peace-talks", "peace talks", "", ["peace-talks"]),
    # lower-case operators are words
    ("peace and war", "war and peace", "", ["peace", "and", "war"]),
    ("peace and war", "peace, war", "", None),
    ("peace or war", "peace", "", None),
    ("not war", "not a war", "", ["not", "war"]),
    ("not war", "war", "", None),
    ("near war", "near a war", "", ["near", "war"]),
    # NEAR: position difference of the nearest words, 1 <= difference <= n, either order
    ("Russia NEAR/1 sanctions", "Russia sanctions", "", ["Russia", "sanctions"]),
    ("Russia NEAR/1 sanctions", "Sanctions on Russia", "", None),
    ("Russia NEAR/2 sanctions", "Sanctions on Russia", "", ["Russia", "sanctions"]),
    ("Russia NEAR/1 sanctions", "sanctions Russia", "", ["Russia", "sanctions"]),
    ("Russia NEAR/6 sanctions", "Russia faces a new round of sanctions", "", ["Russia", "sanctions"]),
    ("Russia NEAR/5 sanctions", "Russia faces a new round of sanctions", "", None),
    ("Russia NEAR/6 sanctions", "Sanctions: a new round of pain for Russia", "", None),
    ("Russia NEAR/7 sanctions", "Sanctions: a new round of pain for Russia", "", ["Russia", "sanctions"]),
    ("Russia NEAR/5 sanctions", "Russia", "sanctions", None),
    ("Russia NEAR/5 sanctions", "Russia now", "new sanctions on Russia", ["Russia", "sanctions"]),
    ('"peace talks" NEAR/2 Istanbul', "Peace talks in Istanbul", "", ["peace talks", "Istanbul"]),
    ('"peace talks" NEAR/1 Istanbul', "Peace talks in Istanbul", "", None),
    ('"peace talks" NEAR/2 Istanbul', "Istanbul hosts peace talks", "", ["peace talks", "Istanbul"]),
    ('"peace talks" NEAR/1 Istanbul', "Istanbul hosts peace talks", "", None),
    ("sanction* NEAR/2 Russia", "Russia sanctioned again", "", ["sanctioned", "Russia"]),
    ("sanction* NEAR/1 Russia", "Sanctions lifted; Russia sanctioned", "", ["sanctioned", "Russia"]),
    ("(Putin OR Kremlin) NEAR/3 talks", "Kremlin rejects talks", "Putin silent", ["Kremlin", "talks"]),
    ("(Putin OR Kremlin) NEAR/3 talks", "Kremlin rejects new proposed talks", "", None),
    ("war NEAR/3 war", "war", "", None),
    ("war NEAR/3 war", "war and war", "", ["war"]),
    ('talks NEAR/3 "peace talks"', "peace talks", "", None),
    ("Russia NEAR/2 sanctions oil", "Russia oil sanctions", "", ["Russia", "sanctions", "oil"]),
    ("Russia NEAR/2 sanctions oil", "Russia sanctions", "oil prices", ["Russia", "sanctions", "oil"]),
    ("Russia NEAR/2 sanctions oil", "Russia faces oil sanctions", "", None),
    ("Russia NEAR/2 sanctions OR oil", "oil", "", ["oil"]),
    ("peace NOT (Russia NEAR/2 sanctions)", "peace", "Russia sanctions", None),
    ("peace NOT (Russia NEAR/2 sanctions)", "peace", "Russia faces new sanctions", ["peace"]),
    ("{US} NEAR/1 sanctions", "us sanctions", "", None),
    ("{US} NEAR/1 sanctions", "US sanctions", "", ["US", "sanctions"]),
    # fields
    ("title:Putin", "Putin speaks", "", ["Putin"]),
    ("title:Putin", "Talks", "Putin speaks", None),
    ("summary:Putin", "Putin", "", None),
    ("summary:Putin", "", "Putin", ["Putin"]),
    ('title:"peace talks"', "Peace talks", "", ["peace talks"]),
    ('title:"peace talks"', "Update", "peace talks", None),
    ("title:(Putin OR Zelensky)", "Update", "Putin", None),
    ("title:(Putin OR Zelensky)", "Zelensky", "Putin", ["Zelensky"]),
    ("title:(Putin Zelensky)", "Putin", "Zelensky", None),
    ("title:negotiat*", "Negotiations", "negotiators", ["Negotiations"]),
    ("title:{START}", "New START", "", ["START"]),
    ("-title:war peace", "peace", "war", ["peace"]),
    ("-title:war peace", "war peace", "", None),
    ("title:(Russia NEAR/2 sanctions)", "Russia sanctions", "", ["Russia", "sanctions"]),
    ("title:(Russia NEAR/2 sanctions)", "Update", "Russia sanctions", None),
    ("title:Russia NEAR/2 sanctions", "Update", "Russia sanctions", None),
    ("title:(Russia -war)", "Russia", "war", ["Russia"]),
    ("title:(Russia -war)", "Russia war", "", None),
    # {case-sensitive}
    ("{START}", "New START treaty", "", ["START"]),
    ("{START}", "A fresh start", "", None),
    ("{START}", "Start of talks", "", None),
    ("{New START}", "New START expires", "", ["New START"]),
    ("{New START}", "a new start", "", None),
    ("{New START}", "New Start", "", None),
    ("{Zelensky}", "Z\u00e9lensky", "", ["Zelensky"]),
    ("{Zelensky}", "zelensky", "", None),
    ("{NAT*}", "NATO summit", "", ["NATO"]),
    ("{NAT*}", "national summit", "", None),
    ("{US} sanctions", "Sanctions hurt us", "", None),
    ("{US} sanctions", "US sanctions", "", ["US", "sanctions"]),
    ("{Russia's}", "Russia", "", ["Russia's"]),
    # the spec's example
    (
        '("peace talks" OR ceasefire) AND (Russia OR Putin) AND (Ukraine OR Zelensky)',
        "Putin and Zelensky agree to ceasefire",
        "",
        ["ceasefire", "Putin", "Zelensky"],
    ),
    (
        '("peace talks" OR ceasefire) AND (Russia OR Putin) AND (Ukraine OR Zelensky)',
        "Talks resume",
        "Russia's peace talks with Ukraine",
        ["peace talks", "Russia", "Ukraine"],
    ),
    (
        '("peace talks" OR ceasefire) AND (Russia OR Putin) AND (Ukraine OR Zelensky)',
        "Gaza ceasefire holds",
        "Russia comments",
        None,
    ),
]


@pytest.mark.parametrize(("query", "title", "summary", "expected"), MATCHES)
def test_match(query: str, title: str, summary: str, expected: list[str] | None) -> None:
    assert compile_query(query).match(prepare(title, summary)) == expected


ERRORS = [
    ("", 1, "empty query"),
    ("   ", 1, "empty query"),
    ("AND peace", 1, 'expected a term before "AND"'),
    ("OR peace", 1, 'expected a term before "OR"'),
    ("NEAR/3 peace", 1, 'expected a term before "NEAR/3"'),
    ("peace AND", 7, 'expected a term after "AND"'),
    ("peace OR", 7, 'expected a term after "OR"'),
    ("peace NEAR/3", 7, 'expected a term after "NEAR/3"'),
    ("peace AND OR talks", 11, 'expected a term after "AND"'),
    ("peace AND )", 11, 'expected a term after "AND"'),
    ("peace (OR talks)", 8, 'expected a term before "OR"'),
    ("()", 1, "empty parentheses"),
    ("peace ( )", 7, "empty parentheses"),
    ("(peace", 1, 'unclosed "("'),
    ("((peace) talks", 1, 'unclosed "("'),
    ("peace (", 7, 'unclosed "("'),
    ("peace)", 6, 'unexpected ")"'),
    (") peace", 1, 'unexpected ")"'),
    ("peace (talks))", 14, 'unexpected ")"'),
    ('"peace talks', 1, "unterminated phrase"),
    ('peace "talks', 7, "unterminated phrase"),
    ('""', 1, "empty phrase"),
    ('peace "..."', 7, "empty phrase"),
    ("{New START", 1, 'unclosed "{"'),
    ("{New {START}", 6, 'unexpected "{"'),
    ("START}", 6, 'unexpected "}"'),
    ("{}", 1, "empty braces"),
    ("peace NEAR talks", 7, "NEAR needs a distance"),
    ("peace NEAR/ talks", 7, "NEAR needs a distance"),
    ("peace NEAR/x talks", 7, "NEAR needs a distance"),
    ("peace NEAR/0 talks", 7, "at least 1"),
    ("a NEAR/3 b NEAR/3 c", 12, "cannot be chained"),
    ("NOT a NEAR/3 b", 1, "cannot be negated"),
    ("a NEAR/3 -b", 10, "cannot be negated"),
    ("(a AND b) NEAR/3 c", 2, "cannot contain AND"),
    ("a NEAR/3 (b c)", 11, "cannot contain AND"),
    ("(a NEAR/2 b) NEAR/3 c", 2, "cannot be nested"),
    ("NOT peace", 1, "only negated terms"),
    ("-peace", 1, "only negated terms"),
    ("-peace -war", 1, "only negated terms"),
    ("peace OR -war", 10, "only negated terms"),
    ("peace OR (talks OR NOT war)", 20, "only negated terms"),
    ("(NOT a) OR b", 2, "only negated terms"),
    ("NOT NOT peace", 5, 'expected a term after "NOT"'),
    ("NOT -peace", 5, 'expected a term after "NOT"'),
    ("peace NOT", 7, 'expected a term after "NOT"'),
    ("peace - war", 7, 'expected a term after "-"'),
    ("peace -", 7, 'expected a term after "-"'),
    ("(peace -)", 8, 'expected a term after "-"'),
    ("body:peace", 1, 'unknown field "body:"'),
    ("peace Title:talks", 7, 'unknown field "Title:"'),
    ("title: peace", 1, 'expected a term after "title:"'),
    ("peace title:", 7, 'expected a term after "title:"'),
    ("title:-peace", 7, 'expected a term after "title:"'),
    ("title:NOT peace", 7, 'expected a term after "title:"'),
    ("title:(summary:peace)", 8, '"summary:" inside "title:"'),
    ("neg*tiate", 4, '"*" may only end a word'),
    ("negotiat**", 9, '"*" may only end a word'),
    ("*", 1, '"*" must follow a word'),
    ('"peace *"', 8, '"*" must follow a word'),
    ("&", 1, 'no letters or digits in "&"'),
    ("peace \u2014", 7, "no letters or digits"),
]


@pytest.mark.parametrize(("query", "column", "message"), ERRORS)
def test_malformed(query: str, column: int, message: str) -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        compile_query(query)
    assert (raised.value.column, raised.value.query) == (column, query)
    assert message in raised.value.message


def test_error_pointer_marks_the_column() -> None:
    with pytest.raises(QuerySyntaxError) as raised:
        compile_query("(peace talks))")
    assert raised.value.pointer() == "(peace talks))\n             ^"


@pytest.mark.parametrize(
    ("query", "root"),
    [
        ("a OR b c", Or((Term("a", "a"), And((Term("b", "b"), Term("c", "c")))))),
        ("NOT a b", And((Not(Term("a", "a")), Term("b", "b")))),
        ("a (b c) d", And((Term("a", "a"), Term("b", "b"), Term("c", "c"), Term("d", "d")))),
        (
            'title:"Peace talks" OR negotiat*',
            Or((Phrase(("peace", "talks"), "Peace talks", field="title"), Prefix("negotiat"))),
        ),
        ("{New START}", Phrase(("new", "start"), "New START", exact=("New", "START"))),
        ("Russia's", Term("russia", "Russia's")),
        (
            "(a OR summary:b) NEAR/4 c*",
            Near((Term("a", "a"), Term("b", "b", field="summary")), (Prefix("c"),), 4),
        ),
    ],
)
def test_tree_is_inspectable(query: str, root: object) -> None:
    compiled = compile_query(query)
    assert compiled.root == root
    assert compiled.source == query


def test_one_document_serves_many_queries() -> None:
    doc = prepare("Putin and Zelensky meet", "Peace talks in Istanbul")
    queries = ["Putin", "title:talks", '"peace talks" NEAR/2 Istanbul', "Putin -Zelensky"]
    assert [compile_query(q).match(doc) for q in queries] == [
        ["Putin"],
        None,
        ["peace talks", "Istanbul"],
        None,
    ]
