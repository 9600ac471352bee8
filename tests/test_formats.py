"""Each webhook format: the exact json payload, the chat shapes, escaping and limits."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from email.header import decode_header
from typing import Any

import pytest

from monitor.config import FORMATS, WebhookConfig
from monitor.formats import AlertMessage, defang, new_alert_id, render, sample_message, truncate

NOW = datetime(2026, 11, 28, 18, 0, 0, 123456, tzinfo=UTC)
MESSAGE = AlertMessage(
    alert_id="01JDQ3ZK8X7M4N5P6Q7R8S9T0V",
    created_at=NOW,
    topic_name="peace-talks",
    topic_title="Russia–Ukraine peace talks",
    title="Putin & Zelensky <agree> to \"peace talks\"",
    url="https://news.example.org/world/talks?id=1&utm=x",
    summary="Delegations met in Istanbul on Friday.",
    published=datetime(2026, 11, 28, 17, 55, tzinfo=UTC),
    guid="urn:example:1",
    feed_name="Example World",
    feed_url="https://news.example.org/world/rss.xml",
    matched=("peace talks", "Putin", "Zelensky"),
)
BARE = dataclasses.replace(MESSAGE, topic_title=None, published=None, url=None, guid=None)


def hook(format: str, url: str = "https://hooks.example.com/alerts") -> WebhookConfig:
    return WebhookConfig(name="test", url=url, format=format)


def body_of(message: AlertMessage, format: str) -> Any:
    return json.loads(render(message, hook(format)).body)


# --- json ---------------------------------------------------------------------------------


def test_json_payload_is_exactly_the_spec_shape() -> None:
    rendered = render(MESSAGE, hook("json"))
    assert rendered.url == "https://hooks.example.com/alerts"
    assert rendered.headers == {"Content-Type": "application/json"}
    assert json.loads(rendered.body) == {
        "type": "monitor.alert",
        "timestamp": "2026-11-28T18:00:00Z",
        "data": {
            "alert_id": "01JDQ3ZK8X7M4N5P6Q7R8S9T0V",
            "topic": {"name": "peace-talks", "title": "Russia–Ukraine peace talks"},
            "item": {
                "title": "Putin & Zelensky <agree> to \"peace talks\"",
                "url": "https://news.example.org/world/talks?id=1&utm=x",
                "summary": "Delegations met in Istanbul on Friday.",
                "published": "2026-11-28T17:55:00Z",
                "guid": "urn:example:1",
                "feed": {"name": "Example World", "url": "https://news.example.org/world/rss.xml"},
            },
            "matched": ["peace talks", "Putin", "Zelensky"],
            "snippet": "Putin & Zelensky <agree> to \"peace talks\"",
            "story": {"sources": 1, "feeds": []},
        },
    }


REPORTED = dataclasses.replace(MESSAGE, sources=14, source_names=tuple(f"Outlet {n}" for n in range(14)))


def test_json_follow_up_names_the_story_sources() -> None:
    body = body_of(dataclasses.replace(REPORTED, follow_up=True), "json")
    assert body["type"] == "monitor.follow_up"
    assert body["data"]["story"] == {"sources": 14, "feeds": [f"Outlet {n}" for n in range(10)]}
    assert body_of(REPORTED, "json")["type"] == "monitor.alert"


@pytest.mark.parametrize("format", ["slack", "discord", "teams", "mattermost", "ntfy"])
def test_chat_formats_say_how_widely_a_story_is_reported(format: str) -> None:
    follow_up = dataclasses.replace(REPORTED, follow_up=True, source_names=("Wire <b>", "Courier\u202e"))
    body = render(follow_up, hook(format)).body.decode() + str(render(follow_up, hook(format)).headers)
    assert "Now reported by 14 sources" in body
    assert "14 sources: Wire" in body and "and 12 more" in body
    assert "\u202e" not in render(defang(follow_up), hook(format)).body.decode()
    single = render(MESSAGE, hook(format)).body.decode()
    assert "Reported by" not in single and "sources" not in single


def test_json_without_optional_facts_uses_null_and_topic_name() -> None:
    data = body_of(BARE, "json")["data"]
    assert data["topic"] == {"name": "peace-talks", "title": "peace-talks"}
    assert data["item"]["published"] is None
    assert data["item"]["url"] is None
    assert data["item"]["guid"] is None


def test_json_is_compact_utf8_not_ascii_escaped() -> None:
    body = render(MESSAGE, hook("json")).body
    assert b", " not in body and b'": ' not in body
    assert "Russia–Ukraine".encode() in body


def test_json_timestamps_are_utc_z_whatever_the_zone() -> None:
    kyiv = timezone(timedelta(hours=2))
    message = dataclasses.replace(
        MESSAGE,
        created_at=NOW.astimezone(kyiv),
        published=datetime(2026, 11, 28, 19, 55, tzinfo=kyiv),
    )
    payload = body_of(message, "json")
    assert payload["timestamp"] == "2026-11-28T18:00:00Z"
    assert payload["data"]["item"]["published"] == "2026-11-28T17:55:00Z"


def test_json_summary_is_cut_to_1000_on_a_word_boundary() -> None:
    words = " ".join(f"word{i}" for i in range(400))
    item = body_of(dataclasses.replace(MESSAGE, summary=words), "json")["data"]["item"]
    summary = item["summary"]
    assert len(summary) <= 1000
    assert summary.endswith("…")
    assert words.startswith(summary[:-1])
    assert words[len(summary) - 1] == " "  # the cut fell between two words


def test_json_summary_of_exactly_1000_chars_is_kept_whole() -> None:
    summary = "x" * 1000
    item = body_of(dataclasses.replace(MESSAGE, summary=summary), "json")["data"]["item"]
    assert item["summary"] == summary


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("one two three", 10, "one two…"),
        ("one two three", 8, "one two…"),
        ("abcdefghijklmnop", 6, "abcde…"),  # one long word: a hard cut
        ("", 5, ""),
    ],
)
def test_truncate(text: str, limit: int, expected: str) -> None:
    assert truncate(text, limit) == expected


def test_unknown_format_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="carrier-pigeon"):
        render(MESSAGE, hook("carrier-pigeon"))


# --- Slack --------------------------------------------------------------------------------


def test_slack_has_fallback_text_and_blocks_with_every_fact() -> None:
    payload = body_of(MESSAGE, "slack")
    assert payload["text"] == (
        "Russia–Ukraine peace talks: Putin &amp; Zelensky &lt;agree&gt; to \"peace talks\""
    )
    header, section, context = payload["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Russia–Ukraine peace talks"},
    }
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"] == (
        "*<https://news.example.org/world/talks?id=1&amp;utm=x"
        "|Putin &amp; Zelensky &lt;agree&gt; to \"peace talks\">*\n"
        "Delegations met in Istanbul on Friday."
    )
    facts = context["elements"][0]["text"]
    assert "Example World" in facts
    assert "2026-11-28 17:55 UTC" in facts
    assert "peace talks, Putin, Zelensky" in facts


def test_slack_cannot_be_made_to_mention_the_channel() -> None:
    message = dataclasses.replace(MESSAGE, title="<!channel> alert", summary="<!here> <@U123>")
    body = render(message, hook("slack")).body.decode()
    assert "<!" not in body and "<@" not in body


def test_slack_link_url_cannot_break_out_of_the_link() -> None:
    message = dataclasses.replace(MESSAGE, url="https://x.example/a|b>c d")
    text = body_of(message, "slack")["blocks"][1]["text"]["text"]
    assert text.startswith("*<https://x.example/a%7Cb%3Ec%20d|")


def test_slack_respects_block_limits() -> None:
    message = dataclasses.replace(
        MESSAGE, topic_title="T" * 400, title="&" * 2000, summary="<" * 5000, feed_name="&" * 5000
    )
    header, section, context = body_of(message, "slack")["blocks"]
    assert len(header["text"]["text"]) <= 150
    assert len(section["text"]["text"]) <= 3000
    assert len(context["elements"][0]["text"]) <= 3000
    # escaping happened after the cut: no entity is left in halves
    assert re.search(r"&(?!amp;|lt;|gt;)", section["text"]["text"]) is None


# --- Discord ------------------------------------------------------------------------------


def test_discord_embed_carries_every_fact() -> None:
    rendered = render(MESSAGE, hook("discord", "https://discord.com/api/webhooks/1/tok"))
    assert rendered.url == "https://discord.com/api/webhooks/1/tok?wait=true"
    payload = json.loads(rendered.body)
    assert payload["content"] == "**Russia–Ukraine peace talks**"
    assert payload["allowed_mentions"] == {"parse": []}
    [embed] = payload["embeds"]
    assert embed["title"] == MESSAGE.title
    assert embed["url"] == MESSAGE.url
    assert embed["description"] == "Delegations met in Istanbul on Friday."
    assert embed["timestamp"] == "2026-11-28T17:55:00Z"
    assert embed["footer"] == {"text": "Example World"}
    assert embed["fields"] == [{"name": "Matched", "value": "peace talks, Putin, Zelensky"}]


def test_discord_without_url_or_date_leaves_them_out() -> None:
    [embed] = body_of(BARE, "discord")["embeds"]
    assert "url" not in embed and "timestamp" not in embed


def test_discord_everyone_in_a_title_does_not_ping() -> None:
    message = dataclasses.replace(MESSAGE, topic_title="@everyone news", title="@everyone look")
    payload = body_of(message, "discord")
    assert payload["allowed_mentions"] == {"parse": []}
    assert "@everyone" in payload["content"]  # shown, but with no mention allowed


def test_discord_markdown_in_the_summary_is_escaped() -> None:
    message = dataclasses.replace(MESSAGE, summary="**bold** [link](x) `code`")
    [embed] = body_of(message, "discord")["embeds"]
    assert embed["description"] == r"\*\*bold\*\* \[link\]\(x\) \`code\`"


def test_discord_line_start_markdown_is_escaped_but_dates_are_not() -> None:
    message = dataclasses.replace(MESSAGE, summary="# Big\n1. first\n- item on 2026-11-28")
    [embed] = body_of(message, "discord")["embeds"]
    assert embed["description"] == "\\# Big\n1\\. first\n\\- item on 2026-11-28"


def test_discord_empty_summary_and_title_are_not_sent_empty() -> None:
    [embed] = body_of(dataclasses.replace(MESSAGE, title="  ", summary=""), "discord")["embeds"]
    assert embed["title"] == "(no title)"
    assert "description" not in embed


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://d.example/api/webhooks/1/t", "https://d.example/api/webhooks/1/t?wait=true"),
        ("https://d.example/w?thread_id=9", "https://d.example/w?thread_id=9&wait=true"),
        ("https://d.example/w?wait=false&a=b%20c", "https://d.example/w?a=b%20c&wait=true"),
        ("https://d.example/w?", "https://d.example/w?wait=true"),
    ],
)
def test_discord_url_gets_wait_true(url: str, expected: str) -> None:
    assert render(MESSAGE, hook("discord", url)).url == expected


def test_discord_respects_limits() -> None:
    message = dataclasses.replace(
        MESSAGE, topic_title="*" * 3000, title="t" * 1000, summary="_" * 9000,
        feed_name="f" * 9000, matched=tuple("m" * 50 for _ in range(100)),
    )
    payload = body_of(message, "discord")
    [embed] = payload["embeds"]
    assert len(payload["content"]) <= 2000
    assert len(embed["title"]) <= 256
    assert len(embed["description"]) <= 4096
    assert len(embed["footer"]["text"]) <= 2048
    assert len(embed["fields"][0]["value"]) <= 1024
    total = (len(embed["title"]) + len(embed["description"]) + len(embed["footer"]["text"])
             + sum(len(f["name"]) + len(f["value"]) for f in embed["fields"]))
    assert total <= 6000


# --- Teams --------------------------------------------------------------------------------


def test_teams_is_a_workflows_adaptive_card() -> None:
    payload = body_of(MESSAGE, "teams")
    assert payload["type"] == "message"
    [attachment] = payload["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert all(block["type"] == "TextBlock" for block in card["body"])
    texts = " ".join(block["text"] for block in card["body"])
    for fact in ("Russia–Ukraine peace talks", MESSAGE.title, "Example World",
                 "2026-11-28 17:55 UTC", "peace talks, Putin, Zelensky"):
        assert fact in texts
    open_url = {"type": "Action.OpenUrl", "title": "Open article", "url": MESSAGE.url}
    assert card["actions"] == [open_url]


def test_teams_without_url_has_no_action() -> None:
    card = body_of(BARE, "teams")["attachments"][0]["content"]
    assert "actions" not in card
    assert "unknown" in card["body"][-1]["text"]  # the published date


# --- Mattermost ---------------------------------------------------------------------------


def test_mattermost_is_markdown_text_with_every_fact() -> None:
    payload = body_of(MESSAGE, "mattermost")
    assert list(payload) == ["text"]
    text = payload["text"]
    assert text.splitlines()[0] == "**Russia–Ukraine peace talks**"
    assert (
        r"**[Putin & Zelensky \<agree\> to "
        '"peace talks"](https://news.example.org/world/talks?id=1&utm=x)**'
    ) in text
    assert "Example World" in text and "2026-11-28 17:55 UTC" in text
    assert "peace talks, Putin, Zelensky" in text


def test_mattermost_escapes_markdown_and_mentions_in_titles() -> None:
    message = dataclasses.replace(
        MESSAGE, title="*Breaking* [x](y) _now_ @channel", url="https://x.example/a (b)"
    )
    line = body_of(message, "mattermost")["text"].splitlines()[1]
    assert line == (
        r"**[\*Breaking\* \[x\]\(y\) \_now\_ @"
        "\u200bchannel](https://x.example/a%20%28b%29)**"
    )


# --- ntfy ---------------------------------------------------------------------------------


def test_ntfy_is_plain_text_with_headers() -> None:
    rendered = render(dataclasses.replace(MESSAGE, title="Peace talks begin"), hook("ntfy"))
    assert rendered.headers == {
        "Content-Type": "text/plain; charset=utf-8",
        "Title": "Peace talks begin",
        "Tags": "newspaper,peace-talks",
        "Priority": "3",
        "Click": "https://news.example.org/world/talks?id=1&utm=x",
    }
    text = rendered.body.decode()
    assert text.startswith("Delegations met in Istanbul on Friday.\n\n")
    for fact in ("Topic: Russia–Ukraine peace talks", "Feed: Example World",
                 "Published: 2026-11-28 17:55 UTC", "Matched: peace talks, Putin, Zelensky"):
        assert fact in text.splitlines()


def test_ntfy_non_ascii_title_is_rfc2047_encoded() -> None:
    title = "Переговоры о мире — Zelensky"
    headers = render(dataclasses.replace(MESSAGE, title=title), hook("ntfy")).headers
    assert headers["Title"].isascii()
    assert re.fullmatch(r"=\?UTF-8\?B\?[A-Za-z0-9+/=]+\?=", headers["Title"])
    [(raw, charset)] = decode_header(headers["Title"])
    assert raw.decode(charset) == title


def test_ntfy_headers_are_single_line_ascii() -> None:
    message = dataclasses.replace(MESSAGE, title="two\nlines", url="https://x.example/ü page")
    headers = render(message, hook("ntfy")).headers
    assert headers["Title"] == "two lines"
    assert headers["Click"] == "https://x.example/%C3%BC%20page"
    assert all(v.isascii() and "\n" not in v for v in headers.values())


def test_ntfy_body_stays_under_4096_bytes() -> None:
    message = dataclasses.replace(MESSAGE, summary="ж" * 5000)
    assert len(render(message, hook("ntfy")).body) <= 4096


# --- every format -------------------------------------------------------------------------


@pytest.mark.parametrize("format", ["json", "slack", "discord", "teams", "mattermost", "ntfy"])
def test_every_format_renders_a_bare_message(format: str) -> None:
    rendered = render(BARE, hook(format))
    assert rendered.body
    assert rendered.headers["Content-Type"]


def test_rendered_repr_hides_the_url_token() -> None:
    rendered = render(MESSAGE, hook("discord", "https://discord.com/api/webhooks/1/SECRETTOKEN"))
    assert "SECRETTOKEN" not in repr(rendered)


# --- ids and the sample -------------------------------------------------------------------


def test_new_alert_id_is_a_ulid() -> None:
    alert_id = new_alert_id(NOW)
    assert re.fullmatch(r"[0-7][0-9A-HJKMNP-TV-Z]{25}", alert_id)
    assert new_alert_id(NOW) != alert_id
    # The first 10 chars are the millisecond time, so ids sort by creation.
    assert new_alert_id(NOW + timedelta(milliseconds=1))[:10] > alert_id[:10]
    millis = 0
    for char in alert_id[:10]:
        millis = millis * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    assert millis == int(NOW.timestamp() * 1000)


def test_sample_message_is_obviously_a_test_and_unique() -> None:
    first, second = sample_message(NOW), sample_message(NOW)
    assert first.alert_id != second.alert_id
    assert "test" in first.title.lower()
    assert first.created_at == NOW
    assert "." not in first.alert_id


HOSTILE = "\u202eevil\u202c \u2066hidden\u2069 bell\x07 esc\x1b[31m nul\x00 c1\x85 del\x7f"


@pytest.mark.parametrize("fmt", FORMATS)
def test_control_and_bidi_characters_never_reach_any_format(fmt: str) -> None:
    message = dataclasses.replace(
        sample_message(datetime(2026, 11, 28, tzinfo=UTC)), title=f"Title {HOSTILE}",
        summary=f"Summary {HOSTILE}", feed_name=f"Feed {HOSTILE}", topic_title=f"Topic {HOSTILE}")
    rendered = render(message, hook(fmt))
    headers = [b.decode(c or "ascii") if isinstance(b, bytes) else b
               for value in rendered.headers.values() for b, c in decode_header(value)]
    text = rendered.body.decode() + " ".join(headers)
    for char in "\u202e\u202c\u2066\u2069\x07\x1b\x00\x85\x7f":
        assert char not in text and json.dumps(char)[1:-1] not in text, (fmt, repr(char))
    assert "evil" in text and "hidden" in text  # the words stay; only the characters go
