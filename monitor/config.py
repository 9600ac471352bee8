"""TOML file → validated, frozen config; collects every problem with its key path."""

from __future__ import annotations

import base64
import binascii
import difflib
import functools
import json
import os
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from monitor.errors import ConfigError, Problem, QuerySyntaxError
from monitor.pacing import DEFAULT_RATES, Rate, parse_rate
from monitor.query import Query, compile_query

FORMATS = ("json", "slack", "discord", "teams", "mattermost", "ntfy")
FIRST_POLL_MODES = ("baseline", "recent", "all")
LOG_FORMATS = ("text", "json")

_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
_UNIT_SECONDS = (86400, 3600, 60, 1)
_ENV = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")

_KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Settings:
    """The [monitor] table."""

    database: str = "sqlite:///monitor.db"   # resolved: a relative sqlite path is made absolute
    interval: timedelta | None = None          # None: "auto", each feed at its own pace
    min_interval: timedelta = timedelta(minutes=2)   # the bounds of "auto"
    max_interval: timedelta = timedelta(hours=2)
    first_poll: str = "baseline"
    recent: timedelta = timedelta(hours=24)
    concurrency: int = 32                     # feeds fetched at once (beyond SPEC; documented)
    per_host: int = 4                         # of those, at most this many from one host
    host_delay: timedelta = timedelta(0)      # between the starts of two fetches from one host
    alert_after: timedelta | None = None      # a feed failing this long sends one feed-health alert
    timeout: timedelta = timedelta(seconds=30)  # total time for one feed fetch (beyond SPEC)
    retention: timedelta = timedelta(days=90)   # items and alerts older than this are pruned
    story_window: timedelta = timedelta(hours=72)  # how far back a report can join a story by its text
    auto_migrate: bool = False                # upgrade the schema at start instead of refusing
    log_format: str = "text"                  # text | json


@dataclass(frozen=True)
class ServerConfig:
    """The optional [server] table: where /healthz and /metrics listen."""

    host: str
    port: int


# Delay after each failed attempt (Svix's schedule): 7 retries over about 28 hours.
DEFAULT_RETRY = tuple(timedelta(seconds=s) for s in (5, 300, 1800, 7200, 18000, 36000, 36000))
MAX_RETRIES = 30
MAX_DIGEST = timedelta(days=1)  # news a day old is no longer news
FEED_HEALTH = "feed-health"  # the topic name of the alert a long-failing feed sends (alert_after)


@dataclass(frozen=True)
class WebhookConfig:
    name: str
    url: str
    format: str = "json"
    secret: str | None = field(default=None, repr=False)
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    retry: tuple[timedelta, ...] = DEFAULT_RETRY  # delay after each failed attempt
    rate_limit: Rate | None = None                # None: no limit
    digest: timedelta | None = None               # every alert waits this long, bundled per topic
    max_per_hour: int | None = None               # singles per clock hour; the rest go in digests


@dataclass(frozen=True, slots=True)
class FeedConfig:
    url: str
    name: str | None = None
    interval: timedelta | None = None       # None: Settings.interval (fixed, or auto)
    tags: tuple[str, ...] = ()
    alert_after: timedelta | None = None    # None: Settings.alert_after


@dataclass(frozen=True)
class TopicConfig:
    name: str
    query: Query
    title: str | None = None
    webhooks: tuple[str, ...] = ()           # () = every webhook
    feeds: tuple[str, ...] = ()              # () = every feed; entries are names, URLs or "tag:x"
    dedupe: str = "story"                    # story: one alert per story | item: per item (URL)
    follow_ups: bool = False                 # one more alert when the story reaches follow_up_sources
    follow_up_sources: int = 3


@dataclass(frozen=True)
class Config:
    path: Path
    settings: Settings
    webhooks: tuple[WebhookConfig, ...]
    feeds: tuple[FeedConfig, ...]
    topics: tuple[TopicConfig, ...]
    server: ServerConfig | None = None      # None: no listener


def parse_duration(text: str) -> timedelta:
    """"30s", "5m", "1h", "2d" (also "1h30m") → timedelta; ValueError with a clear message."""
    match = _DURATION.fullmatch(text.strip())
    if not text.strip() or match is None:
        raise ValueError(
            f'invalid duration "{text}": write whole numbers with a unit d, h, m or s, '
            'like "30s", "10m" or "1h30m"'
        )
    seconds = sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if n)
    try:
        return timedelta(seconds=seconds)
    except OverflowError as e:
        raise ValueError(f'duration "{text}" is too long') from e


def format_duration(duration: timedelta) -> str:
    """timedelta → the shortest duration string parse_duration reads back ("1h30m")."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in zip("dhms", _UNIT_SECONDS, strict=True):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def load_config(path: str | Path) -> Config:
    """Read and validate; raises ConfigError listing every problem (never anything else)."""
    path = Path(path)
    text = _read(path)
    raw = _parse_toml(path, text)
    check = _Checker(text)
    _expand_env(raw, (), check)
    config = _build_config(path, raw, check)
    if check.problems:
        # Document order reads best; problems without a line go last.
        problems = sorted(check.problems, key=lambda p: p.line or float("inf"))
        raise ConfigError(str(path), problems)
    return config


# --- reading -------------------------------------------------------------------------


def _read(path: Path) -> str:
    try:
        # utf-8-sig: editors on Windows like to prepend a BOM, which TOML forbids.
        return path.read_bytes().decode("utf-8-sig")
    except OSError as e:
        raise ConfigError(str(path), [Problem("", f"cannot read config: {e.strerror or e}")]) from e
    except UnicodeDecodeError as e:
        problem = Problem("", f"cannot read config: not UTF-8 text (byte {e.start})")
        raise ConfigError(str(path), [problem]) from e


def _parse_toml(path: Path, text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message, line, column = _split_toml_error(str(e), text)
        where = f" (column {column})" if column else ""
        problem = Problem("", f"invalid TOML: {message}{where}", line)
        raise ConfigError(str(path), [problem]) from e


def _split_toml_error(message: str, text: str) -> tuple[str, int | None, int | None]:
    """tomllib puts the position in the message text: take it out into numbers."""
    match = _TOML_POSITION.search(message)
    if match is None:
        return message, None, None
    if match.group(1) is None:  # "at end of document"
        return message[: match.start()], max(len(text.splitlines()), 1), None
    return message[: match.start()], int(match.group(1)), int(match.group(2))


# --- locating keys in the source -----------------------------------------------------

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED_KEY = rf"{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*"
_HEADER_LINE = re.compile(rf"\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]\]?\s*(?:#.*)?")
_KEY_LINE = re.compile(rf"\s*({_DOTTED_KEY})\s*=")


def _locate_keys(text: str) -> dict[_KeyPath, int]:
    """Map key paths to the 1-based line that defines them.

    tomllib reports no positions, so scan the lines for table headers and `key =` lines.
    Values spread over several lines (arrays, inline tables) are found at their first line.
    """
    lines: dict[_KeyPath, int] = {}
    array_counts: dict[_KeyPath, int] = {}
    block: _KeyPath = ()
    open_string: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if open_string is not None:
            if open_string in line:
                open_string = None
            continue
        header = _HEADER_LINE.fullmatch(line)
        if header is not None:
            block = _header_path(header, array_counts, lines, number)
        elif (key := _KEY_LINE.match(line)) is not None:
            parts = _split_key(key.group(1))
            for end in range(1, len(parts) + 1):
                lines.setdefault((*block, *parts[:end]), number)
        open_string = _opens_multiline_string(line)
    return lines


def _header_path(
    header: re.Match[str],
    array_counts: dict[_KeyPath, int],
    lines: dict[_KeyPath, int],
    number: int,
) -> _KeyPath:
    """The concrete path of a `[a.b]` or `[[a.b]]` header, with array indexes filled in."""
    parts = _split_key(header.group(2))
    parent: list[str | int] = []
    for part in parts[:-1]:
        parent.append(part)
        if tuple(parent) in array_counts:  # [webhooks.headers] belongs to the last [[webhooks]]
            parent.append(array_counts[tuple(parent)])
    path: _KeyPath = (*parent, parts[-1])
    lines.setdefault(path, number)
    if header.group(1) == "[[":
        array_counts[path] = array_counts.get(path, -1) + 1
        path = (*path, array_counts[path])
        lines.setdefault(path, number)
    return path


def _split_key(dotted: str) -> list[str]:
    return [part.strip("\"'") for part in re.findall(_KEY_PART, dotted)]


def _opens_multiline_string(line: str) -> str | None:
    """The delimiter of a multi-line string left open at the end of `line`, if any."""
    for delimiter in ('"""', "'''"):
        if line.count(delimiter) % 2 == 1:
            return delimiter
    return None


# --- collecting problems -------------------------------------------------------------


class _Checker:
    """Collects problems, each placed at its key path and source line."""

    def __init__(self, text: str):
        self.problems: list[Problem] = []
        self._text = text
        self._reported: set[_KeyPath] = set()

    @functools.cached_property
    def _lines(self) -> dict[_KeyPath, int]:
        # Only once there is a problem to place: at 100,000 feeds the map would double
        # the memory a valid config takes to load.
        return _locate_keys(self._text)

    def add(self, path: _KeyPath, message: str) -> None:
        # One problem per key: a missing ${VAR} should not also be reported as a bad URL.
        if path in self._reported:
            return
        self._reported.add(path)
        self.problems.append(Problem(_format_path(path), message, self._line(path)))

    def _line(self, path: _KeyPath) -> int | None:
        # A missing key is best shown at its table's header, so fall back to the parents.
        for end in range(len(path), 0, -1):
            if path[:end] in self._lines:
                return self._lines[path[:end]]
        return None


def _format_path(path: _KeyPath) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            text += f".{key}" if text else key
    return text


def _expand_env(value: Any, path: _KeyPath, check: _Checker) -> Any:
    """Replace ${NAME} in every string value; `$${NAME}` stays literally `${NAME}`.
    Dicts and lists are changed in place (a copy of a 100,000-feed config costs tens of MB)."""
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _expand_env(item, (*path, key), check)
        return value
    if isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _expand_env(item, (*path, i), check)
        return value
    if not isinstance(value, str) or "$" not in value:
        return value
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        escaped, name = match.groups()
        if escaped:
            return match.group(0)[1:]
        if name not in os.environ:
            missing.append(name)
            return ""
        return os.environ[name]

    expanded = _ENV.sub(substitute, value)
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        noun = "variable" if len(missing) == 1 else "variables"
        verb = "is" if len(missing) == 1 else "are"
        check.add(path, f"environment {noun} {names} {verb} not set")
    return expanded


# --- reading typed keys --------------------------------------------------------------


@dataclass(slots=True)
class _Table:
    """One TOML table under validation: reads typed keys and reports problems at their path."""

    data: dict[str, Any]
    path: _KeyPath
    check: _Checker

    def problem(self, key: str | int, message: str) -> None:
        self.check.add((*self.path, key), message)

    def allow(self, keys: Sequence[str]) -> None:
        for key in self.data:
            if key not in keys:
                self.problem(key, _unknown_key_message(key, keys))

    def string(self, key: str, *, required: bool = False) -> str | None:
        if key not in self.data:
            if required:
                self.problem(key, "required key is missing")
            return None
        return _nonempty_string(self.data[key], (*self.path, key), self.check)

    def duration(self, key: str, minimum: timedelta = timedelta(seconds=1)) -> timedelta | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if isinstance(value, int) and not isinstance(value, bool):
            self.problem(key, f'expected a duration string like "{value}s", not a bare number')
            return None
        if not isinstance(value, str):
            self.problem(key, 'expected a duration string like "10m"')
            return None
        try:
            duration = parse_duration(value)
        except ValueError as e:
            self.problem(key, str(e))
            return None
        if duration < minimum:
            self.problem(key, f"must be at least {format_duration(minimum)}")
            return None
        return duration

    def integer(self, key: str, low: int, high: int) -> int | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem(key, "expected an integer")
            return None
        if not low <= value <= high:
            self.problem(key, f"must be between {low} and {high}")
            return None
        return value

    def boolean(self, key: str) -> bool | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, bool):
            self.problem(key, "expected true or false")
            return None
        return value

    def choice(self, key: str, options: Sequence[str]) -> str | None:
        value = self.string(key)
        if value is not None and value not in options:
            choices = ", ".join(options)
            self.problem(key, f'"{value}" is not one of {choices}{_hint(value, options)}')
            return None
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        if key not in self.data:
            return None
        value = self.data[key]
        if not isinstance(value, list):
            self.problem(key, "expected a list of strings")
            return None
        items = [_nonempty_string(v, (*self.path, key, i), self.check) for i, v in enumerate(value)]
        strings = tuple(item for item in items if item is not None)
        return strings if len(strings) == len(value) else None

    def tables(self, key: str) -> list[_Table]:
        """The entries of an array of tables such as [[feeds]]."""
        value = self.data.get(key, [])
        if not isinstance(value, list):
            self.problem(key, f"expected an array of tables, written [[{key}]]")
            return []
        tables = []
        for i, item in enumerate(value):
            if isinstance(item, dict):
                tables.append(_Table(item, (*self.path, key, i), self.check))
            else:
                self.check.add((*self.path, key, i), "expected a table")
        return tables


def _nonempty_string(value: Any, path: _KeyPath, check: _Checker) -> str | None:
    if not isinstance(value, str):
        check.add(path, "expected a string")
        return None
    if not value.strip():
        check.add(path, "must not be empty")
        return None
    return value


def _unknown_key_message(key: str, allowed: Sequence[str]) -> str:
    hint = _hint(key, allowed)
    return f"unknown key{hint}" if hint else f"unknown key (expected one of: {', '.join(allowed)})"


def _hint(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


# --- the sections --------------------------------------------------------------------

_TOP_KEYS = ("monitor", "server", "webhooks", "feeds", "topics")
_SETTINGS_KEYS = ("database", "interval", "min_interval", "max_interval", "first_poll", "recent", "concurrency",
                  "per_host", "host_delay", "alert_after", "timeout", "retention", "story_window", "auto_migrate",
                  "log_format")
_SERVER_KEYS = ("listen",)
_WEBHOOK_KEYS = ("name", "url", "format", "secret", "headers", "retry", "rate_limit", "digest",
                 "max_per_hour")
_FEED_KEYS = ("url", "name", "interval", "tags", "alert_after")
_TOPIC_KEYS = ("name", "title", "query", "webhooks", "feeds", "dedupe", "follow_ups", "follow_up_sources")
DEDUPE_MODES = ("story", "item")


def _build_config(path: Path, raw: dict[str, Any], check: _Checker) -> Config:
    root = _Table(raw, (), check)
    root.allow(_TOP_KEYS)
    webhook_tables = root.tables("webhooks")
    feed_tables = root.tables("feeds")
    webhooks = tuple(filter(None, (_webhook(t) for t in webhook_tables)))
    feeds = tuple(filter(None, (_feed(t) for t in feed_tables)))
    _check_unique(webhook_tables, "name")
    _check_unique(feed_tables, "name")
    _check_unique(feed_tables, "url")
    # References are checked against every entry written, valid or not, so that one
    # broken webhook or feed does not also make each topic naming it an error.
    names = [name for t in webhook_tables if isinstance(name := t.data.get("name"), str)]
    known_feeds = [_loose_feed(t.data) for t in feed_tables]
    topic_tables = root.tables("topics")
    topics = tuple(filter(None, (_topic(t, names, known_feeds) for t in topic_tables)))
    _check_unique(topic_tables, "name")
    return Config(
        path=path.resolve(),
        settings=_settings(root, path.resolve().parent),
        webhooks=webhooks,
        feeds=feeds,
        topics=topics,
        server=_server(root),
    )


def _settings(root: _Table, base: Path) -> Settings:
    value = root.data.get("monitor", {})
    if not isinstance(value, dict):
        root.problem("monitor", "expected a table, written [monitor]")
        value = {}
    table = _Table(value, ("monitor",), root.check)
    table.allow(_SETTINGS_KEYS)
    defaults = Settings()
    low = table.duration("min_interval") or defaults.min_interval
    high = table.duration("max_interval") or defaults.max_interval
    if low > high:
        table.problem("max_interval", f"must not be shorter than min_interval ({format_duration(low)})")
    return Settings(
        database=_database(table, base) or _resolve_sqlite(defaults.database, base),
        interval=None if table.data.get("interval") == "auto" else table.duration("interval"),
        min_interval=low,
        max_interval=high,
        first_poll=table.choice("first_poll", FIRST_POLL_MODES) or defaults.first_poll,
        recent=table.duration("recent") or defaults.recent,
        concurrency=table.integer("concurrency", 1, 1000) or defaults.concurrency,
        per_host=table.integer("per_host", 1, 1000) or defaults.per_host,
        host_delay=table.duration("host_delay", minimum=timedelta(0)) or defaults.host_delay,
        alert_after=table.duration("alert_after"),
        timeout=table.duration("timeout") or defaults.timeout,
        retention=table.duration("retention") or defaults.retention,
        story_window=table.duration("story_window") or defaults.story_window,
        auto_migrate=bool(table.boolean("auto_migrate")),
        log_format=table.choice("log_format", LOG_FORMATS) or defaults.log_format,
    )


def _server(root: _Table) -> ServerConfig | None:
    if "server" not in root.data:
        return None
    value = root.data["server"]
    if not isinstance(value, dict):
        root.problem("server", "expected a table, written [server]")
        return None
    table = _Table(value, ("server",), root.check)
    table.allow(_SERVER_KEYS)
    listen = table.string("listen", required=True)
    if listen is None:
        return None
    try:
        return parse_listen(listen)
    except ValueError as e:
        table.problem("listen", str(e))
        return None


def parse_listen(text: str) -> ServerConfig:
    """"127.0.0.1:9308", "[::1]:9308", ":9308" (every interface) → host and port."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'"{text}" is not HOST:PORT (like "127.0.0.1:9308")')
    host = host.removeprefix("[").removesuffix("]")
    return ServerConfig(host or "0.0.0.0", int(port))


def _database(table: _Table, base: Path) -> str | None:
    url = table.string("database")
    if url is None:
        return None
    try:
        return _resolve_sqlite(url, base)
    except (ArgumentError, ValueError):
        table.problem("database", 'not a database URL (like "sqlite:///monitor.db")')
        return None


def _resolve_sqlite(url: str, base: Path) -> str:
    """Make a relative sqlite file path absolute against `base`; leave other URLs alone."""
    parsed = make_url(url)
    database = parsed.database
    if (
        parsed.get_backend_name() != "sqlite"
        or not database
        or database == ":memory:"
        or database.startswith("file:")  # a sqlite URI: its meaning is sqlite's business
        or Path(database).is_absolute()
    ):
        return url
    # Keep the user's text (and any ?query) verbatim rather than re-rendering the URL.
    scheme, rest = url.split(":///", 1)
    file, question, query = rest.partition("?")
    return f"{scheme}:///{os.path.normpath(base / file)}{question}{query}"


def _webhook(table: _Table) -> WebhookConfig | None:
    table.allow(_WEBHOOK_KEYS)
    name = table.string("name", required=True)
    if name is not None and any(c.isspace() for c in name):
        table.problem("name", "must not contain spaces")
    url = _http_url(table, "url")
    format_ = table.choice("format", FORMATS)
    secret = _secret(table)
    headers = _headers(table)
    retry = _retry(table)
    rate = _rate_limit(table, format_ or "json")
    digest = table.duration("digest")
    if digest is not None and digest > MAX_DIGEST:
        table.problem("digest", f"at most {format_duration(MAX_DIGEST)}")
    max_per_hour = table.integer("max_per_hour", 1, 100_000)
    if "digest" in table.data and "max_per_hour" in table.data:
        table.problem("max_per_hour", "cannot be combined with digest, which already puts every "
                      "alert in a digest: keep one of the two")
    if name is None or url is None:
        return None
    return WebhookConfig(name, url, format_ or "json", secret, headers,
                         DEFAULT_RETRY if retry is None else retry, rate, digest, max_per_hour)


def _rate_limit(table: _Table, format_: str) -> Rate | None:
    """`rate_limit = "30/m"`, or "none"; by default what the format's target takes."""
    text = table.string("rate_limit")
    if text is None:
        default = DEFAULT_RATES.get(format_)
        return parse_rate(default) if default else None
    if text == "none":
        return None
    try:
        return parse_rate(text)
    except ValueError as e:
        table.problem("rate_limit", str(e))
        return None


def _retry(table: _Table) -> tuple[timedelta, ...] | None:
    """`retry = ["5s", "5m", ...]`: the delay after each failed attempt; [] never retries."""
    if "retry" not in table.data:
        return None
    value = table.data["retry"]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        table.problem("retry", 'expected a list of durations, like ["5s", "5m", "30m"]')
        return None
    if len(value) > MAX_RETRIES:
        table.problem("retry", f"at most {MAX_RETRIES} retries")
        return None
    delays = []
    for i, text in enumerate(value):
        try:
            delays.append(parse_duration(text))
        except ValueError as e:
            table.check.add((*table.path, "retry", i), str(e))
    return tuple(delays) if len(delays) == len(value) else None


def _http_url(table: _Table, key: str) -> str | None:
    url = table.string(key, required=True)
    problem = _url_problem(url) if url is not None else None
    if problem is not None:
        table.problem(key, problem)
        return None
    return url


def _url_problem(url: str) -> str | None:
    """Why `url` is no usable http(s) URL, or None.

    Never repeats the URL: webhook URLs (Slack, Discord) are secrets themselves.
    """
    if any(c.isspace() for c in url):
        return "URL must not contain spaces"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - only to raise ValueError for a bad port
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("http", "https"):
        return "expected an http:// or https:// URL"
    if not parts.hostname:
        return "URL has no host"
    return None


def _secret(table: _Table) -> str | None:
    secret = table.string("secret")
    if secret is not None and secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            key = b""
        if not key:
            table.problem("secret", 'a "whsec_" secret must continue with base64 key bytes')
            return None
    return secret


def _headers(table: _Table) -> tuple[tuple[str, str], ...]:
    value = table.data.get("headers", {})
    if not isinstance(value, dict):
        table.problem("headers", 'expected a table, like { Authorization = "Bearer ..." }')
        return ()
    headers = _Table(value, (*table.path, "headers"), table.check)
    result = []
    for name in value:
        text = headers.string(name)
        if not _HEADER_NAME.fullmatch(name):
            headers.problem(name, "not a valid HTTP header name")
        elif text is not None and ("\r" in text or "\n" in text):
            headers.problem(name, "must not contain line breaks")
        elif text is not None and not text.isascii():
            # HTTP header values are bytes; httpx refuses non-ASCII at send time.
            headers.problem(name, "must be ASCII")
        elif text is not None:
            result.append((name, text))
    return tuple(result)


def _feed(table: _Table) -> FeedConfig | None:
    table.allow(_FEED_KEYS)
    url = _http_url(table, "url")
    name = table.string("name")
    if name is not None and name.startswith("tag:"):
        table.problem("name", 'must not start with "tag:" (topics use that prefix for tags)')
    interval = table.duration("interval")
    tags = table.strings("tags")
    alert_after = table.duration("alert_after")
    if url is None:
        return None
    return FeedConfig(url, name, interval, tags or (), alert_after)


def _loose_feed(data: dict[str, Any]) -> FeedConfig:
    """What a topic may refer to in a feed entry, read without validating it."""
    url, name, tags = data.get("url"), data.get("name"), data.get("tags")
    return FeedConfig(
        url=url if isinstance(url, str) else "",
        name=name if isinstance(name, str) else None,
        tags=tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
    )


def _topic(table: _Table, webhooks: list[str], feeds: list[FeedConfig]) -> TopicConfig | None:
    table.allow(_TOPIC_KEYS)
    name = table.string("name", required=True)
    if name == FEED_HEALTH:
        table.problem("name", f'"{FEED_HEALTH}" is the topic of monitor\'s own feed-health alerts: choose another')
    title = table.string("title")
    query = _query(table)
    webhook_refs = _references(table, "webhooks")
    for i, ref in enumerate(webhook_refs or ()):
        if ref not in webhooks:
            message = f'no webhook named "{ref}"{_hint(ref, webhooks)}'
            table.check.add((*table.path, "webhooks", i), message)
    feed_refs = _references(table, "feeds")
    for i, ref in enumerate(feed_refs or ()):
        if not any(refers_to(ref, feed) for feed in feeds):
            table.check.add((*table.path, "feeds", i), _missing_feed_message(ref, feeds))
    dedupe = table.choice("dedupe", DEDUPE_MODES) or "story"
    follow_ups = bool(table.boolean("follow_ups"))
    sources = table.integer("follow_up_sources", 2, 10_000) or 3
    if follow_ups and dedupe == "item":
        table.problem("follow_ups", 'needs dedupe = "story": with "item" every report alerts on its own')
    if name is None or query is None:
        return None
    return TopicConfig(name, query, title, webhook_refs or (), feed_refs or (), dedupe, follow_ups, sources)


def _query(table: _Table) -> Query | None:
    text = table.string("query", required=True)
    if text is None:
        return None
    try:
        return compile_query(text)
    except QuerySyntaxError as e:
        pointer = "\n".join(f"    {line}" for line in e.pointer().splitlines())
        table.problem("query", f"{e.message} at column {e.column}\n{pointer}")
        return None


def _references(table: _Table, key: str) -> tuple[str, ...] | None:
    refs = table.strings(key)
    if refs == ():
        table.problem(key, f"must not be empty (leave {key} out to use every one)")
        return None
    return refs


def refers_to(ref: str, feed: FeedConfig) -> bool:
    """Whether a topic's `feeds` entry (a name, a URL or "tag:x") selects this feed."""
    if ref.startswith("tag:"):
        return ref.removeprefix("tag:") in feed.tags
    return ref in (feed.name, feed.url)


def _missing_feed_message(ref: str, feeds: list[FeedConfig]) -> str:
    if ref.startswith("tag:"):
        tags = {f"tag:{tag}" for feed in feeds for tag in feed.tags}
        return f'no feed has tag "{ref.removeprefix("tag:")}"{_hint(ref, tags)}'
    names = [feed.name for feed in feeds if feed.name is not None]
    return f'no feed named "{ref}" or with that URL{_hint(ref, names)}'


def _check_unique(tables: list[_Table], key: str) -> None:
    first: dict[str, _Table] = {}
    for table in tables:
        value = table.data.get(key)
        if not isinstance(value, str):
            continue
        if value in first:
            where = _format_path(first[value].path)
            table.problem(key, f"duplicate {key}, already used by {where}")
        else:
            first[value] = table
