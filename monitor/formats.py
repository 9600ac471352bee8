"""One alert → the HTTP request body and headers each webhook format expects (pure)."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from monitor.config import WebhookConfig
from monitor.snippet import SNIPPET_LIMIT, snippet

SOURCE_NAMES = 10  # of a story's sources, the names an alert lists
SUMMARY_LIMIT = 1000  # SPEC: the json summary is at most 1000 chars; chat formats share it
JSON = "application/json"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True)
class AlertMessage:
    """Everything an alert says; the pipeline builds it from the outbox row."""

    alert_id: str                # ULID, no "."; sent as webhook-id, the same on every retry
    created_at: datetime         # aware UTC; the json payload's "timestamp"
    topic_name: str
    topic_title: str | None
    title: str
    url: str | None
    summary: str                 # plain text, any length (each format cuts it to fit)
    published: datetime | None
    guid: str | None
    feed_name: str
    feed_url: str
    matched: tuple[str, ...]     # the query words that matched, for humans
    sources: int = 1             # feeds that have reported its story
    source_names: tuple[str, ...] = ()  # their names, first reports first
    follow_up: bool = False      # the story has reached the topic's follow_up_sources since its alert

    @property
    def message_id(self) -> str:
        return self.alert_id


@dataclass(frozen=True)
class DigestMessage:
    """Several alerts of one topic in one message (a `digest` window, or `max_per_hour`
    overflow); each keeps its own alert id, shown in the message."""

    digest_id: str               # ULID; the webhook-id, the same on every retry
    created_at: datetime
    topic_name: str
    topic_title: str | None
    alerts: tuple[AlertMessage, ...]  # oldest first

    @property
    def message_id(self) -> str:
        return self.digest_id


Message = AlertMessage | DigestMessage


@dataclass(frozen=True)
class Rendered:
    """The request to make for one alert, before delivery headers (id, signature, auth)."""

    url: str = field(repr=False)  # chat webhook URLs carry their token: keep it out of logs
    headers: dict[str, str]
    body: bytes


def render(message: Message, webhook: WebhookConfig) -> Rendered:
    """The request `webhook` expects for `message`; ValueError for an unknown format."""
    if webhook.format not in _RENDERERS:
        raise ValueError(f"unknown webhook format {webhook.format!r}")
    if isinstance(message, DigestMessage):
        return _DIGEST_RENDERERS[webhook.format](defang_digest(message), webhook.url)
    return _RENDERERS[webhook.format](defang(message), webhook.url)


# C0 and C1 control characters (tab and newline aside), DEL, and the bidirectional
# embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) with which a feed could
# make a title read backwards, or hide text, in a chat client.
_HOSTILE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def strip_hostile(text: str) -> str:
    return _HOSTILE.sub("", text)


def defang(message: AlertMessage) -> AlertMessage:
    """The message with hostile characters removed from every text a feed controls."""
    return replace(
        message,
        title=strip_hostile(message.title), summary=strip_hostile(message.summary),
        feed_name=strip_hostile(message.feed_name),
        topic_title=strip_hostile(message.topic_title) if message.topic_title else None,
        guid=strip_hostile(message.guid) if message.guid else None,
        matched=tuple(strip_hostile(m) for m in message.matched),
        source_names=tuple(strip_hostile(name) for name in message.source_names),
    )


def defang_digest(digest: DigestMessage) -> DigestMessage:
    return replace(
        digest, alerts=tuple(defang(a) for a in digest.alerts),
        topic_title=strip_hostile(digest.topic_title) if digest.topic_title else None,
    )


def new_alert_id(now: datetime) -> str:
    """A ULID: 48-bit milliseconds since the epoch + 80 random bits, 26 chars Crockford base32.

    Sorts by creation time, contains no "." (Standard Webhooks ids must not)."""
    millis = int(_utc(now).timestamp() * 1000) & ((1 << 48) - 1)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def sample_message(now: datetime) -> AlertMessage:
    """An obviously fake alert for `monitor test-webhook`; a fresh alert_id on every call."""
    alert_id = new_alert_id(now)
    return AlertMessage(
        alert_id=alert_id,
        created_at=now,
        topic_name="monitor-test",
        topic_title="monitor test alert",
        title="Test alert from monitor: your webhook works",
        url="https://example.com/monitor/test-alert",
        summary="This is a sample alert sent by `monitor test-webhook`. No news happened; "
        "if you can read this, deliveries to this webhook work.",
        published=now,
        guid=f"monitor-test-{alert_id}",
        feed_name="monitor (sample feed)",
        feed_url="https://example.com/monitor/feed.xml",
        matched=("test",),
    )


def truncate(text: str, limit: int) -> str:
    """`text` in at most `limit` chars: cut on a word boundary (unless one word would eat
    more than half the room) and ended with "…"."""
    if len(text) <= limit:
        return text
    if limit < 1:
        return ""
    head = text[: limit - 1]
    if not text[limit - 1].isspace():
        boundary = re.search(r"\s\S*\Z", head)
        if boundary and boundary.start() > limit // 2:
            head = head[: boundary.start()]
    return head.rstrip() + "…"


# --- json (Standard Webhooks) -------------------------------------------------------------


def _json_payload(message: AlertMessage) -> dict[str, Any]:
    """SPEC's payload. topic.title falls back to the topic name so that it is always a
    string a receiver can show."""
    return {
        "type": "monitor.follow_up" if message.follow_up else "monitor.alert",
        "timestamp": _iso(message.created_at),
        "data": {
            "alert_id": message.alert_id,
            "topic": {"name": message.topic_name, "title": _topic(message)},
            "item": {
                "title": message.title,
                "url": message.url,
                "summary": truncate(message.summary, SUMMARY_LIMIT),
                "published": _iso(message.published) if message.published else None,
                "guid": message.guid,
                "feed": {"name": message.feed_name, "url": message.feed_url},
            },
            "matched": list(message.matched),
            "snippet": snippet(message.title, message.summary, message.matched).text,
            "story": {"sources": message.sources,
                      "feeds": [truncate(name, 100) for name in message.source_names[:SOURCE_NAMES]]},
        },
    }


def _render_json(message: AlertMessage, url: str) -> Rendered:
    return Rendered(url, {"Content-Type": JSON}, _dump(_json_payload(message)))


# --- Slack incoming webhook ---------------------------------------------------------------


def _render_slack(message: AlertMessage, url: str) -> Rendered:
    title = _fit(_title(message), 500, _slack_escape)
    link = f"<{_slack_escape(_quote_url(message.url, '|<>'))}|{title}>" if message.url else title
    headline = f"*{link}*"
    section = headline
    if message.summary:
        room = 3000 - len(headline) - 1
        section += "\n" + _fit(truncate(message.summary, SUMMARY_LIMIT), room, _slack_escape)
    payload = {
        # The fallback is what notifications and screen readers show.
        "text": _fit(f"{_topic(message)}: {_title(message)}", 3000, _slack_escape),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": truncate(_topic(message), 150)},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": section}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": _fit(_facts_line(message), 3000, _slack_escape)}
                ],
            },
        ],
    }
    return Rendered(url, {"Content-Type": JSON}, _dump(payload))


def _slack_escape(text: str) -> str:
    # Slack's mrkdwn reserves only these three; "<!channel>" cannot be formed without "<".
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- Discord webhook ----------------------------------------------------------------------


def _render_discord(message: AlertMessage, url: str) -> Rendered:
    embed: dict[str, Any] = {
        "title": truncate(_title(message), 256),
        "fields": [{"name": "Matched", "value": truncate(_matched(message), 1024)}],
        "footer": {"text": truncate(_feed(message), 2048)},
    }
    if message.sources > 1:
        embed["fields"].append({"name": "Reported by", "value": truncate(_sources(message), 1024)})
    if message.summary:
        summary = truncate(message.summary, SUMMARY_LIMIT)
        embed["description"] = _fit(summary, 4096, _markdown_escape)
    if message.url:
        embed["url"] = message.url
    if message.published:
        embed["timestamp"] = _iso(message.published)
    payload = {
        "content": f"**{_fit(_topic(message), 1996, _markdown_escape)}**",
        "embeds": [embed],
        # A feed title saying "@everyone" must not ping a whole server.
        "allowed_mentions": {"parse": []},
    }
    return Rendered(_with_wait(url), {"Content-Type": JSON}, _dump(payload))


def _with_wait(url: str) -> str:
    """`url` with wait=true, so that Discord reports a message it failed to save."""
    base, _, fragment = url.partition("#")
    base, _, query = base.partition("?")
    params = [p for p in query.split("&") if p and p.split("=", 1)[0] != "wait"]
    params.append("wait=true")
    return f"{base}?{'&'.join(params)}" + (f"#{fragment}" if fragment else "")


# --- Microsoft Teams (Workflows) ----------------------------------------------------------


def _render_teams(message: AlertMessage, url: str) -> Rendered:
    body: list[dict[str, Any]] = [
        _text_block(_topic(message), size="Small", weight="Bolder", color="Accent"),
        _text_block(_title(message), size="Large", weight="Bolder"),
    ]
    if message.summary:
        body.append(_text_block(truncate(message.summary, SUMMARY_LIMIT)))
    body.append(_text_block(_facts_line(message, bold="**"), size="Small", isSubtle=True))
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if message.url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open article", "url": message.url}]
    payload = {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }
    return Rendered(url, {"Content-Type": JSON}, _dump(payload))


def _text_block(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


# --- Mattermost ---------------------------------------------------------------------------


def _render_mattermost(message: AlertMessage, url: str) -> Rendered:
    def escape(text: str) -> str:
        return _neutralise_mentions(_markdown_escape(text))

    title = escape(truncate(_title(message), 500))
    if message.url:
        title = f"[{title}]({_quote_url(message.url, ' ()<>')})"
    lines = [f"**{escape(_topic(message))}**", f"**{title}**"]
    if message.summary:
        lines.append(escape(truncate(message.summary, SUMMARY_LIMIT)))
    lines.append(escape(_facts_line(message, bold="")))
    return Rendered(url, {"Content-Type": JSON}, _dump({"text": "\n".join(lines)}))


def _neutralise_mentions(text: str) -> str:
    # A zero-width space after "@" stops "@channel" or "@someone" in a feed from notifying.
    return text.replace("@", "@\u200b")


# --- ntfy ---------------------------------------------------------------------------------

_NTFY_BODY_BYTES = 4096  # ntfy's default message limit; beyond it the body becomes a file


def _render_ntfy(message: AlertMessage, url: str) -> Rendered:
    facts = "\n".join(
        [
            f"Topic: {_topic(message)}",
            f"Feed: {_feed(message)}",
            f"Published: {_human_time(message.published)}",
            f"Matched: {_matched(message)}",
            *([f"Reported by: {_sources(message)}"] if message.sources > 1 else []),
        ]
    )
    room = _NTFY_BODY_BYTES - len(facts.encode()) - 2
    summary = _fit(truncate(message.summary, SUMMARY_LIMIT), room, measure=_utf8_len)
    body = f"{summary}\n\n{facts}" if summary else facts
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Title": _header_value(truncate(_title(message), 250)),
        "Tags": _header_value(f"newspaper,{message.topic_name.replace(',', ' ')}"),
        "Priority": "3",
    }
    if message.url:
        headers["Click"] = _quote_url(message.url, "")
    return Rendered(url, headers, body.encode())


def _header_value(text: str) -> str:
    """ASCII as is; anything else as one RFC 2047 encoded word, which ntfy decodes."""
    if text.isascii():
        return text
    return f"=?UTF-8?B?{base64.b64encode(text.encode()).decode()}?="


# --- shared helpers -----------------------------------------------------------------------


def _topic(message: AlertMessage) -> str:
    return message.topic_title or message.topic_name


def _title(message: AlertMessage) -> str:
    # Chat targets reject or hide an empty title; feeds do send items without one.
    title = _one_line(message.title) or "(no title)"
    return f"Now reported by {message.sources} sources: {title}" if message.follow_up else title


def _sources(message: AlertMessage) -> str:
    """"4 sources: A, B, C and 1 more" — each name cut short, so that the line stays small."""
    names = [truncate(_one_line(name), 40) for name in message.source_names[:SOURCE_NAMES]]
    more = message.sources - len(names)
    listed = ", ".join(names) + (f" and {more} more" if names and more > 0 else "")
    return f"{message.sources} sources" + (f": {listed}" if listed else "")


def _feed(message: AlertMessage) -> str:
    return _one_line(message.feed_name) or message.feed_url


def _matched(message: AlertMessage) -> str:
    return ", ".join(message.matched) or "—"


def _facts_line(message: AlertMessage, bold: str = "*") -> str:
    """Feed, published time and matched words on one line (`bold` wraps the labels)."""
    facts = [
        ("Feed", _feed(message)),
        ("Published", _human_time(message.published)),
        ("Matched", _matched(message)),
    ]
    if message.sources > 1:
        facts.append(("Reported by", _sources(message)))
    return "  ·  ".join(f"{bold}{label}:{bold} {value}" for label, value in facts)


def _utc(moment: datetime) -> datetime:
    # The store keeps UTC; a naive value read back from SQLite means UTC, not local time.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


def _human_time(moment: datetime | None) -> str:
    return _utc(moment).strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _quote_url(url: str, unsafe: str) -> str:
    """Percent-encode non-ASCII, whitespace and the `unsafe` characters that would end a
    link in the target's markup; everything else (including existing %XX) is kept."""
    safe = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in unsafe)
    return quote(url, safe=safe)


_INLINE_MARKDOWN = re.compile(r"([\\`*_~|<>\[\]()])")
_BLOCK_MARKDOWN = re.compile(r"^(\s*)([#+-])", re.MULTILINE)  # heading, bullet
_ORDERED_LIST = re.compile(r"^(\s*\d+)([.)])", re.MULTILINE)


def _markdown_escape(text: str) -> str:
    """Backslash-escape what Discord's and Mattermost's markdown would act on: inline marks
    anywhere, headings and lists only at a line start (so "2026-11-28" stays clean)."""
    text = _INLINE_MARKDOWN.sub(r"\\\1", text)
    text = _BLOCK_MARKDOWN.sub(r"\1\\\2", text)
    return _ORDERED_LIST.sub(r"\1\\\2", text)


def _utf8_len(text: str) -> int:
    return len(text.encode())


def _fit(
    text: str,
    limit: int,
    escape: Callable[[str], str] = str,
    measure: Callable[[str], int] = len,
) -> str:
    """`escape(text)`, truncated before escaping (so no entity or escape is cut in half)
    until its `measure` fits within `limit`."""
    room = limit
    while True:
        out = escape(truncate(text, room))
        if measure(out) <= limit or room <= 0:
            return out
        room -= max(1, (measure(out) - limit) // 4)


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


# --- digests --------------------------------------------------------------------------
# A digest lists its alerts one entry each: title (with its link), feed, time and alert id.
# How many entries one message holds is each target's limit (Slack's 50 blocks, Discord's 10
# embeds, ntfy's 4 KB body, ...): the bundler splits a bigger window into several digests,
# sized with digest_entry_cost, so that every renderer below fits its entries whole.

DIGEST_TITLE = 200    # chars of an entry's title
DIGEST_FEED = 100     # chars of an entry's feed name
DIGEST_SUMMARY = 280  # chars of an entry's summary (json only)

# format → (most entries, most total entry cost) per message
DIGEST_CAPACITY = {
    "json": (25, 18_000),        # Standard Webhooks: keep a payload under 20 KB
    "slack": (40, 30_000),       # 50 blocks; ~40k chars of message
    "discord": (10, 5_000),      # 10 embeds; 6,000 chars of embed text
    "teams": (25, 24_000),       # ~28 KB of card
    "mattermost": (20, 14_000),  # a post of more than 16,383 chars is split
    "ntfy": (10, 3_600),         # a body over 4,096 bytes becomes an attachment
}


def digest_entry_cost(format_: str, title: str, url: str | None, summary: str) -> int:
    """About how much of a message one entry takes (bytes for ntfy, chars elsewhere)."""
    text = title[:DIGEST_TITLE] + (url or "")
    if format_ == "json":  # whole titles, the snippet, and the feed's name, url and the guid besides
        snippet_cost = min(SNIPPET_LIMIT, len(title) + len(summary))  # a piece of the title or summary
        return len(title) + len(url or "") + min(len(summary), DIGEST_SUMMARY) + snippet_cost + 600
    if format_ == "ntfy":
        return len(text.encode()) + DIGEST_FEED + 80
    if format_ == "discord":  # Discord counts embed text, not URLs, against its limit
        return len(title[:DIGEST_TITLE]) + DIGEST_FEED + 40
    return len(text) + DIGEST_FEED + 120


def _entry_facts(alert: AlertMessage, *, id_mark: str = "") -> str:
    feed = truncate(_feed(alert), DIGEST_FEED)
    return f"{feed}  ·  {_human_time(alert.published)}  ·  {id_mark}{alert.alert_id}{id_mark}"


def _entry_title(alert: AlertMessage) -> str:
    return truncate(_title(alert), DIGEST_TITLE)


def _digest_topic(digest: DigestMessage) -> str:
    return digest.topic_title or digest.topic_name


def _count(digest: DigestMessage) -> str:
    n = len(digest.alerts)
    return f"{n} alert" if n == 1 else f"{n} alerts"


def _render_json_digest(digest: DigestMessage, url: str) -> Rendered:
    entries = []
    for alert in digest.alerts:
        data = _json_payload(alert)["data"]
        data["item"]["summary"] = truncate(alert.summary, DIGEST_SUMMARY)
        data["story"] = {"sources": alert.sources}  # the names would crowd out entries
        del data["topic"]
        entries.append(data)
    payload = {
        "type": "monitor.digest",
        "timestamp": _iso(digest.created_at),
        "data": {
            "digest_id": digest.digest_id,
            "topic": {"name": digest.topic_name, "title": _digest_topic(digest)},
            "count": len(entries),
            "alerts": entries,
        },
    }
    return Rendered(url, {"Content-Type": JSON}, _dump(payload))


def _render_slack_digest(digest: DigestMessage, url: str) -> Rendered:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(_digest_topic(digest), 150)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"Digest: {_count(digest)}"}]},
    ]
    for alert in digest.alerts:
        title = _slack_escape(_entry_title(alert))
        link = f"<{_slack_escape(_quote_url(alert.url, '|<>'))}|{title}>" if alert.url else title
        facts = _slack_escape(_entry_facts(alert, id_mark="`"))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{link}*\n{facts}"}})
    payload = {
        "text": _fit(f"{_digest_topic(digest)}: {_count(digest)}", 3000, _slack_escape),
        "blocks": blocks,
    }
    return Rendered(url, {"Content-Type": JSON}, _dump(payload))


def _render_discord_digest(digest: DigestMessage, url: str) -> Rendered:
    embeds = []
    for alert in digest.alerts:
        embed: dict[str, Any] = {"title": _entry_title(alert),
                                 "footer": {"text": _entry_facts(alert)}}
        if alert.url:
            embed["url"] = alert.url
        if alert.published:
            embed["timestamp"] = _iso(alert.published)
        embeds.append(embed)
    topic = _fit(_digest_topic(digest), 1900, _markdown_escape)
    payload = {
        "content": f"**{topic}**: {_count(digest)}",
        "embeds": embeds,
        "allowed_mentions": {"parse": []},
    }
    return Rendered(_with_wait(url), {"Content-Type": JSON}, _dump(payload))


def _render_teams_digest(digest: DigestMessage, url: str) -> Rendered:
    body: list[dict[str, Any]] = [
        _text_block(_digest_topic(digest), size="Small", weight="Bolder", color="Accent"),
        _text_block(f"Digest: {_count(digest)}", size="Large", weight="Bolder"),
    ]
    for alert in digest.alerts:
        entry: dict[str, Any] = {
            "type": "Container",
            "separator": True,
            "items": [_text_block(_entry_title(alert), weight="Bolder"),
                      _text_block(_entry_facts(alert), size="Small", isSubtle=True)],
        }
        if alert.url:  # the whole entry opens the article
            entry["selectAction"] = {"type": "Action.OpenUrl", "title": "Open article", "url": alert.url}
        body.append(entry)
    card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4", "body": body}
    payload = {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }
    return Rendered(url, {"Content-Type": JSON}, _dump(payload))


def _render_mattermost_digest(digest: DigestMessage, url: str) -> Rendered:
    def escape(text: str) -> str:
        return _neutralise_mentions(_markdown_escape(text))

    lines = [f"**{escape(_digest_topic(digest))}**: {_count(digest)}"]
    for alert in digest.alerts:
        title = escape(_entry_title(alert))
        if alert.url:
            title = f"[{title}]({_quote_url(alert.url, ' ()<>')})"
        lines += [f"- **{title}**", f"  {escape(_entry_facts(alert))}"]
    return Rendered(url, {"Content-Type": JSON}, _dump({"text": "\n".join(lines)}))


def _render_ntfy_digest(digest: DigestMessage, url: str) -> Rendered:
    entries = []
    for alert in digest.alerts:
        lines = [f"• {_entry_title(alert)}"]
        if alert.url:
            lines.append(f"  {_quote_url(alert.url, '')}")
        lines.append(f"  {_entry_facts(alert)}")
        entries.append("\n".join(lines))
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Title": _header_value(truncate(f"{_digest_topic(digest)}: {_count(digest)}", 250)),
        "Tags": _header_value(f"newspaper,{digest.topic_name.replace(',', ' ')}"),
        "Priority": "3",
    }
    return Rendered(url, headers, "\n\n".join(entries).encode())


_DIGEST_RENDERERS: dict[str, Callable[[DigestMessage, str], Rendered]] = {
    "json": _render_json_digest,
    "slack": _render_slack_digest,
    "discord": _render_discord_digest,
    "teams": _render_teams_digest,
    "mattermost": _render_mattermost_digest,
    "ntfy": _render_ntfy_digest,
}

_RENDERERS: dict[str, Callable[[AlertMessage, str], Rendered]] = {
    "json": _render_json,
    "slack": _render_slack,
    "discord": _render_discord,
    "teams": _render_teams,
    "mattermost": _render_mattermost,
    "ntfy": _render_ntfy,
}
