"""Config loading: the full example, and every kind of problem with its key path and line."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor import config as config_module
from monitor.config import (
    FeedConfig,
    Settings,
    WebhookConfig,
    load_config,
    parse_duration,
)
from monitor.errors import ConfigError, Problem, QuerySyntaxError
from monitor.pacing import Rate

DATA = Path(__file__).parent / "data"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIG_TEST_SECRET", SECRET)
    monkeypatch.setenv("CONFIG_TEST_TOKEN", "tok123")
    monkeypatch.delenv("CONFIG_TEST_UNSET", raising=False)
    monkeypatch.delenv("CONFIG_TEST_UNSET_TOO", raising=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.path == str(path)
    return info.value.problems


# --- valid configs -------------------------------------------------------------------


def test_full_config() -> None:
    config = load_config(DATA / "config_full.toml")

    assert config.path == (DATA / "config_full.toml").resolve()
    assert config.settings == Settings(
        database=f"sqlite:///{DATA.resolve() / 'state' / 'monitor.db'}",
        interval=timedelta(minutes=5),
        first_poll="recent",
        recent=timedelta(days=1, hours=12),
        concurrency=8,
        timeout=timedelta(seconds=45),
    )
    assert config.webhooks == (
        WebhookConfig(
            name="ops",
            url="https://hooks.example.com/alerts",
            format="slack",
            secret=SECRET,
            headers=(("Authorization", "Bearer tok123"), ("X-Price", "$5")),
            rate_limit=Rate(1, 1.0),  # Slack's default
        ),
        WebhookConfig(name="audit", url="http://127.0.0.1:8080/hook"),
    )
    assert config.feeds == (
        FeedConfig(
            url="https://example.org/world/rss.xml",
            name="Example World",
            interval=timedelta(hours=1, minutes=30),
            tags=("wire", "world"),
        ),
        FeedConfig(url="https://example.net/atom.xml"),
    )
    assert [(t.name, t.title, t.query.source, t.webhooks, t.feeds) for t in config.topics] == [
        (
            "peace-talks",
            "Russia–Ukraine peace talks",
            '("peace talks" OR ceasefire) AND (Russia OR Putin) AND (Ukraine OR Zelensky)',
            ("ops",),
            ("tag:wire", "Example World", "https://example.net/atom.xml"),
        ),
        ("elections", None, "election OR\n  ballot", (), ()),
    ]


def test_config_is_frozen() -> None:
    config = load_config(DATA / "config_full.toml")
    with pytest.raises(AttributeError):
        config.settings.interval = timedelta(seconds=1)  # type: ignore[misc]


def test_secrets_stay_out_of_repr() -> None:
    webhook = load_config(DATA / "config_full.toml").webhooks[0]
    assert SECRET not in repr(webhook)
    assert "tok123" not in repr(webhook)


def test_empty_file_is_valid_with_defaults(tmp_path: Path) -> None:
    # No feeds or topics is allowed: the daemon idles, which helps while setting up.
    config = load_config(write(tmp_path, ""))
    assert config.settings == Settings(database=f"sqlite:///{tmp_path.resolve() / 'monitor.db'}")
    assert (config.webhooks, config.feeds, config.topics) == ((), (), ())


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("sqlite:///x.db", "sqlite:///{dir}/x.db"),
        ("sqlite:///./sub/../x.db", "sqlite:///{dir}/x.db"),
        ("sqlite+pysqlite:///x.db?timeout=5", "sqlite+pysqlite:///{dir}/x.db?timeout=5"),
        ("sqlite:////var/lib/monitor.db", "sqlite:////var/lib/monitor.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql+psycopg://u:p@db.example/monitor", "postgresql+psycopg://u:p@db.example/monitor"),
    ],
)
def test_sqlite_path_is_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, expected: str
) -> None:
    config_dir = tmp_path / "conf"
    config_dir.mkdir()
    (config_dir / "config.toml").write_text(f'[monitor]\ndatabase = "{written}"\n')
    monkeypatch.chdir(tmp_path)  # the working directory must not matter

    config = load_config("conf/config.toml")

    assert config.settings.database == expected.format(dir=config_dir.resolve())
    assert config.path == config_dir.resolve() / "config.toml"


# --- environment variables -----------------------------------------------------------


def test_env_is_expanded_in_every_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIG_TEST_HOST", "news.example")
    monkeypatch.setenv("CONFIG_TEST_TAG", "wire")
    path = write(tmp_path, """
[[feeds]]
url = "https://${CONFIG_TEST_HOST}/rss"
name = "cost $5, literal $${CONFIG_TEST_HOST}, $HOME and ${CONFIG_TEST_TAG}"
tags = ["${CONFIG_TEST_TAG}", "x"]
""")
    feed = load_config(path).feeds[0]
    assert feed.url == "https://news.example/rss"
    assert feed.name == "cost $5, literal ${CONFIG_TEST_HOST}, $HOME and wire"
    assert feed.tags == ("wire", "x")


def test_missing_env_is_one_problem_naming_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, """
[[webhooks]]
name = "ops"
url = "${CONFIG_TEST_UNSET}"
headers = { Authorization = "${CONFIG_TEST_UNSET} ${CONFIG_TEST_UNSET_TOO}" }
""")
    # The empty URL left behind is not reported again as a bad URL.
    assert problems_of(path) == [
        Problem("webhooks[0].url", "environment variable CONFIG_TEST_UNSET is not set", 4),
        Problem(
            "webhooks[0].headers.Authorization",
            "environment variables CONFIG_TEST_UNSET, CONFIG_TEST_UNSET_TOO are not set",
            5,
        ),
    ]


def test_problems_never_show_secret_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIG_TEST_SECRET", "whsec_not*base64*s3cr3t")
    path = write(tmp_path, """
[[webhooks]]
name = "ops"
url = "ftp://hooks.example/T0KEN"
secret = "${CONFIG_TEST_SECRET}"
""")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert [p.key for p in info.value.problems] == ["webhooks[0].url", "webhooks[0].secret"]
    assert "s3cr3t" not in str(info.value)
    assert "T0KEN" not in str(info.value)


# --- invalid configs: one problem each, at its key and line --------------------------

FEED = ("[[feeds]]", 'url = "https://example.org/rss"')
HOOK = ("[[webhooks]]", 'name = "ops"', 'url = "https://hooks.example/a"')
TOPIC = ("[[topics]]", 'name = "t"', 'query = "x"')


def case(key: str, line: int, fragment: str, *lines: str) -> Any:
    """A config written one TOML line per argument, so `line` can be counted by eye."""
    return pytest.param("\n".join(lines) + "\n", key, fragment, line, id=key)


INVALID = [
    # [monitor]
    case("monitr", 1, 'unknown key (did you mean "monitor"?)', "[monitr]", 'interval = "5m"'),
    case("monitor.zzz", 2, "unknown key (expected one of: database, interval",
         "[monitor]", "zzz = 1"),
    case("monitor", 1, "expected a table, written [monitor]", "[[monitor]]"),
    case("monitor.interval", 3, 'expected a duration string like "30s"',
         "[monitor]", "", "interval = 30"),
    case("monitor.interval", 2, 'expected a duration string like "10m"',
         "[monitor]", "interval = true"),
    case("monitor.interval", 2, 'invalid duration "10 minutes"',
         "[monitor]", 'interval = "10 minutes"'),
    case("monitor.interval", 2, "must be at least 1s", "[monitor]", 'interval = "0s"'),
    case("monitor.recent", 2, 'invalid duration "1y"', "[monitor]", 'recent = "1y"'),
    case("monitor.timeout", 2, "must be at least 1s", "[monitor]", 'timeout = "0m"'),
    case("monitor.first_poll", 2, '"later" is not one of baseline, recent, all',
         "[monitor]", 'first_poll = "later"'),
    case("monitor.concurrency", 2, "must be between 1 and 1000", "[monitor]", "concurrency = 0"),
    case("monitor.concurrency", 2, "expected an integer", "[monitor]", 'concurrency = "8"'),
    case("monitor.database", 2, "expected a string", "[monitor]", "database = 5"),
    case("monitor.database", 2, "not a database URL", "[monitor]", 'database = "monitor.db"'),
    case("monitor.interval", 1, 'invalid duration "1x"', 'monitor = { interval = "1x" }'),
    # [[webhooks]]
    case("webhooks", 1, "expected an array of tables, written [[webhooks]]",
         "[webhooks]", 'name = "ops"'),
    case("webhooks[0].name", 1, "required key is missing", "[[webhooks]]", 'url = "https://h.example/"'),
    case("webhooks[0].name", 2, "must not be empty",
         "[[webhooks]]", 'name = ""', 'url = "https://h.example/"'),
    case("webhooks[0].name", 2, "must not contain spaces",
         "[[webhooks]]", 'name = "ops team"', 'url = "https://h.example/"'),
    case("webhooks[1].name", 5, "duplicate name, already used by webhooks[0]",
         *HOOK, "[[webhooks]]", 'name = "ops"', 'url = "https://hooks.example/b"'),
    case("webhooks[0].url", 1, "required key is missing", "[[webhooks]]", 'name = "ops"'),
    case("webhooks[0].url", 3, "expected an http:// or https:// URL",
         "[[webhooks]]", 'name = "ops"', 'url = "ftp://h.example/"'),
    case("webhooks[0].url", 3, "URL has no host", "[[webhooks]]", 'name = "ops"', 'url = "https:///p"'),
    case("webhooks[0].url", 3, "not a valid URL",
         "[[webhooks]]", 'name = "ops"', 'url = "https://h.example:99999/"'),
    case("webhooks[0].url", 3, "must not contain spaces",
         "[[webhooks]]", 'name = "ops"', 'url = "https://h.example/a b"'),
    case("webhooks[0].format", 4,
         '"slak" is not one of json, slack, discord, teams, mattermost, ntfy'
         ' (did you mean "slack"?)',
         *HOOK, 'format = "slak"'),
    case("webhooks[0].secret", 4, 'a "whsec_" secret must continue with base64',
         *HOOK, 'secret = "whsec_%%%"'),
    case("webhooks[0].secret", 4, 'a "whsec_" secret must continue with base64',
         *HOOK, 'secret = "whsec_"'),
    case("webhooks[0].secret", 4, "must not be empty", *HOOK, 'secret = ""'),
    case("webhooks[0].headers", 4, "expected a table", *HOOK, 'headers = "X-A: b"'),
    case("webhooks[0].headers.X-A", 4, "expected a string", *HOOK, "headers = { X-A = 1 }"),
    case('webhooks[0].headers."X A"', 4, "not a valid HTTP header name",
         *HOOK, 'headers = { "X A" = "b" }'),
    case("webhooks[0].headers.X-A", 4, "must not contain line breaks",
         *HOOK, 'headers = { X-A = "a\\nb" }'),
    case("webhooks[0].headers.X-A", 4, "must be ASCII", *HOOK, 'headers = { X-A = "Grüße" }'),
    case('webhooks[0].headers."X B"', 7, "not a valid HTTP header name",
         *HOOK, "", "[webhooks.headers]", 'X-A = "ok"', '"X B" = "b"'),
    case("webhooks[0].nmae", 4, 'unknown key (did you mean "name"?)', *HOOK, 'nmae = "x"'),
    # [[feeds]]
    case("feeds[3].intervall", 9, 'unknown key (did you mean "interval"?)',
         *(line.replace("rss", f"rss{i}") for i in range(4) for line in FEED), 'intervall = "5m"'),
    case("feeds[0].url", 1, "required key is missing", "[[feeds]]", 'name = "A"'),
    case("feeds[1].url", 4, "duplicate url, already used by feeds[0]", *FEED, *FEED),
    case("feeds[1].name", 6, "duplicate name, already used by feeds[0]",
         *FEED, 'name = "A"', "[[feeds]]", 'url = "https://b.example/"', 'name = "A"'),
    case("feeds[0].name", 3, 'must not start with "tag:"', *FEED, 'name = "tag:x"'),
    case("feeds[0].interval", 3, 'invalid duration "5 m"', *FEED, 'interval = "5 m"'),
    case("feeds[0].interval", 3, 'expected a duration string like "300s"', *FEED, "interval = 300"),
    case("feeds[0].tags", 3, "expected a list of strings", *FEED, 'tags = "wire"'),
    case("feeds[0].tags[1]", 3, "expected a string", *FEED, "tags = [", '  "wire",', "  3,", "]"),
    case("feeds[0]", 1, "expected a table", 'feeds = ["https://example.org/rss"]'),
    # [[topics]]
    case("topics[0].query", 1, "required key is missing", "[[topics]]", 'name = "t"'),
    case("topics[0].name", 1, "required key is missing", "[[topics]]", 'query = "x"'),
    case("topics[0].query", 3, "must not be empty", "[[topics]]", 'name = "t"', 'query = "  "'),
    case("topics[1].name", 5, "duplicate name, already used by topics[0]",
         *TOPIC, "[[topics]]", 'name = "t"', 'query = "y"'),
    case("topics[0].webhook", 4, 'unknown key (did you mean "webhooks"?)',
         *TOPIC, 'webhook = ["ops"]'),
    case("topics[0].webhooks[1]", 7, 'no webhook named "opz" (did you mean "ops"?)',
         *HOOK, *TOPIC, 'webhooks = ["ops", "opz"]'),
    case("topics[0].webhooks", 4, "must not be empty", *TOPIC, "webhooks = []"),
    case("topics[0].feeds[0]", 7, 'no feed has tag "wir" (did you mean "tag:wire"?)',
         *FEED, 'tags = ["wire"]', *TOPIC, 'feeds = ["tag:wir"]'),
    case("topics[0].feeds[0]", 7, 'no feed named "Wrld" or with that URL (did you mean "World"?)',
         *FEED, 'name = "World"', *TOPIC, 'feeds = ["Wrld"]'),
    case("topics[0].feeds", 4, "must not be empty", *TOPIC, "feeds = []"),
    case("topics[1].extra", 1, "unknown key (expected one of: name, title, query, webhooks, feeds, dedupe, follow_ups, follow_up_sources)",
         "topics = [",
         '  { name = "a", query = "x" },',
         '  { name = "b", query = "y", extra = 1 },',
         "]"),
    # A header inside a multi-line string is text, not a table: the next [[topics]] is topics[1].
    case("topics[1].quux", 11, "unknown key",
         *TOPIC, 'title = """', "[[topics]]", "quux = 1", '"""',
         "[[topics]]", 'name = "b"', 'query = "y"', "quux = 1"),
]


@pytest.mark.parametrize(("text", "key", "fragment", "line"), INVALID)
def test_invalid_config(tmp_path: Path, text: str, key: str, fragment: str, line: int) -> None:
    problems = problems_of(write(tmp_path, text))
    assert [(p.key, p.line) for p in problems] == [(key, line)]
    assert fragment in problems[0].message


def test_every_problem_is_reported_in_file_order() -> None:
    path = DATA / "config_invalid.toml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).splitlines() == [
        f'{path}:3: monitor.interval: expected a duration string like "30s", not a bare number',
        f"{path}:9: webhooks[0].secret: environment variable CONFIG_TEST_UNSET is not set",
        f'{path}:13: feeds[0].intervall: unknown key (did you mean "interval"?)',
        f'{path}:18: topics[0].webhooks[1]: no webhook named "opz" (did you mean "ops"?)',
    ]


def test_query_error_shows_the_query_and_a_caret(tmp_path: Path) -> None:
    path = write(tmp_path, '[[topics]]\nname = "t"\n\nquery = "(a OR b))"\n')
    [problem] = problems_of(path)
    first, query, caret = problem.message.split("\n")
    assert (problem.key, problem.line) == ("topics[0].query", 4)
    assert first.endswith("at column 9")
    assert query == "    (a OR b))"
    assert caret == "    " + " " * 8 + "^"


def test_query_error_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Independent of the query language: how any QuerySyntaxError is laid out.
    def refuse(text: str) -> None:
        raise QuerySyntaxError(text, 4, 'unexpected "AND"')

    monkeypatch.setattr(config_module, "compile_query", refuse)
    path = write(tmp_path, '[[topics]]\nname = "t"\nquery = "a OR AND b"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f'{path}:3: topics[0].query: unexpected "AND" at column 4\n'
        "    a OR AND b\n"
        "       ^"
    )


# --- unreadable files ----------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    assert problems_of(path) == [Problem("", "cannot read config: No such file or directory")]


def test_directory_is_not_a_config(tmp_path: Path) -> None:
    assert problems_of(tmp_path) == [Problem("", "cannot read config: Is a directory")]


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(b'[monitor]\ninterval = "\xff"\n')
    [problem] = problems_of(path)
    assert problem.message.startswith("cannot read config: not UTF-8 text")


def test_toml_syntax_error_has_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[monitor]\ninterval "5m"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    [problem] = info.value.problems
    assert (problem.key, problem.line) == ("", 2)
    assert problem.message.startswith("invalid TOML: Expected '='")
    assert problem.message.endswith("(column 10)")
    assert str(info.value).startswith(f"{path}:2: invalid TOML: ")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('[monitor]\n\ninterval = "5m', 3, "invalid TOML: Unterminated string"),
        ("[monitor]\ninterval = [\n", 2, "invalid TOML: Invalid value"),
    ],
)
def test_toml_error_at_end_of_document(tmp_path: Path, text: str, line: int, message: str) -> None:
    [problem] = problems_of(write(tmp_path, text))
    assert (problem.line, problem.message) == (line, message)


# --- durations -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("5m", timedelta(minutes=5)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("90m", timedelta(minutes=90)),
        (" 10m ", timedelta(minutes=10)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", " ", "10", "500ms", "1.5h", "10M", "1m1h", "-5m", "1h 30m", "10 minutes", "m"]
)
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r'invalid duration ".*": .*like "30s"'):
        parse_duration(text)


def test_parse_duration_refuses_absurd_lengths() -> None:
    with pytest.raises(ValueError, match="too long"):
        parse_duration("99999999999d")


@pytest.mark.parametrize(("fmt", "written", "expected"), [
    ("slack", None, Rate(1, 1.0)), ("discord", None, Rate(30, 60.0)), ("json", None, None),
    ("slack", '"none"', None), ("json", '"120/h"', Rate(120, 3600.0)),
])
def test_rate_limit_defaults_per_format(tmp_path: Path, fmt: str, written: str | None,
                                        expected: Rate | None) -> None:
    line = f"rate_limit = {written}" if written else ""
    (tmp_path / "c.toml").write_text(f'[[webhooks]]\nname = "a"\nurl = "https://x.example/h"\n'
                                     f'format = "{fmt}"\n{line}\n')
    assert load_config(tmp_path / "c.toml").webhooks[0].rate_limit == expected


@pytest.mark.parametrize(("key", "value", "message"), [
    ("rate_limit", '"30/min"', 'invalid rate "30/min": write N/s, N/m or N/h'),
    ("rate_limit", '"0/s"', 'invalid rate "0/s"'),
    ("retry", '["5s", "soon"]', 'webhooks[0].retry[1]: invalid duration "soon"'),
    ("retry", '"5s"', "expected a list of durations"),
    ("digest", '"2d"', "webhooks[0].digest: at most 1d"),
    ("digest", '"soon"', 'invalid duration "soon"'),
    ("max_per_hour", "0", "must be between 1 and 100000"),
    ("max_per_hour", '"60"', "expected an integer"),
])
def test_bad_pacing_keys(tmp_path: Path, key: str, value: str, message: str) -> None:
    (tmp_path / "c.toml").write_text(f'[[webhooks]]\nname = "a"\nurl = "https://x.example/h"\n{key} = {value}\n')
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.toml")
    assert message in str(e.value)


def test_digest_and_max_per_hour_do_not_go_together(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[[webhooks]]\nname = "a"\nurl = "https://x.example/h"\n'
                                     'digest = "15m"\nmax_per_hour = 60\n')
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.toml")
    assert "max_per_hour: cannot be combined with digest" in str(e.value)
    (tmp_path / "c.toml").write_text('[[webhooks]]\nname = "a"\nurl = "https://x.example/h"\ndigest = "15m"\n')
    assert load_config(tmp_path / "c.toml").webhooks[0].digest == timedelta(minutes=15)


def test_interval_is_auto_by_default_or_fixed(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("")
    settings = load_config(path).settings
    assert (settings.interval, settings.min_interval, settings.max_interval) == \
        (None, timedelta(minutes=2), timedelta(hours=2))
    path.write_text('[monitor]\ninterval = "auto"\nmin_interval = "30s"\nmax_interval = "6h"\n')
    settings = load_config(path).settings
    assert (settings.interval, settings.min_interval, settings.max_interval) == \
        (None, timedelta(seconds=30), timedelta(hours=6))
    path.write_text('[monitor]\ninterval = "15m"\n')
    assert load_config(path).settings.interval == timedelta(minutes=15)


@pytest.mark.parametrize(("text", "message"), [
    ('interval = "sometimes"', 'monitor.interval: invalid duration "sometimes"'),
    ('min_interval = "1h"\nmax_interval = "10m"', "monitor.max_interval: must not be shorter than min_interval (1h)"),
])
def test_bad_intervals(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.toml").write_text(f"[monitor]\n{text}\n")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "c.toml")
    assert message in str(e.value)


def test_alert_after_and_the_reserved_topic_name(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[monitor]\nalert_after = "6h"\n\n[[feeds]]\nurl = "https://a.example/rss"\n\n'
                    '[[feeds]]\nurl = "https://b.example/rss"\nalert_after = "1h"\n')
    config = load_config(path)
    assert config.settings.alert_after == timedelta(hours=6)
    assert [f.alert_after for f in config.feeds] == [None, timedelta(hours=1)]
    path.write_text('[[topics]]\nname = "feed-health"\nquery = "x"\n')
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert 'topics[0].name: "feed-health" is the topic of monitor\'s own feed-health alerts' in str(e.value)
