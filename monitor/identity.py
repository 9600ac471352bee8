"""Who an item is: canonical URLs, item and story keys, content fingerprints (pure)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

from monitor.neardup import Fingerprint, fingerprint
from monitor.parse import Item

T = TypeVar("T")

# Query parameters that say how a reader arrived, not what they asked for: the same
# article shared from a newsletter or a social network must compare equal.
#   utm_*              Google Analytics campaign tags (any utm_ parameter)
#   mtm_*              Matomo campaign tags (since 0.3.0)
#   fbclid             Facebook click id
#   gclid, dclid       Google Ads / Display click ids
#   gbraid, wbraid     Google Ads iOS click ids
#   msclkid            Microsoft Ads click id
#   mc_cid, mc_eid     Mailchimp campaign and subscriber ids
#   igshid             Instagram share id
#   yclid              Yandex click id
#   _ga, _gl           Google Analytics cross-domain linker
# and, because news sites in the corpus put them on feed links:
#   at_medium, at_campaign, xtor                      AT Internet / Piano (BBC)
#   ns_mchannel, ns_campaign, ns_source, ns_linkname  comScore (Daily Mail)
#   ito                                               Daily Mail referral tag
#   traffic_source                                    Al Jazeera referral tag
TRACKING_PARAMETERS = frozenset({
    "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid",
    "mc_cid", "mc_eid", "igshid", "yclid", "_ga", "_gl",
    "at_medium", "at_campaign", "xtor",
    "ns_mchannel", "ns_campaign", "ns_source", "ns_linkname", "ito",
    "traffic_source",
})
TRACKING_PREFIXES = ("utm_", "mtm_")
# The identity rules of earlier releases, where they differ: an item is known if it is
# known under any of them, so that an upgrade never makes an old item look new.
LEGACY_PREFIXES = (("utm_",),)  # 0.1–0.2: mtm_ parameters were kept

_DEFAULT_PORTS = {"http": "80", "https": "443"}

# Keys are stored in indexed columns; longer values are replaced by their hash.
MAX_KEY_LENGTH = 512


def canonical_url(url: str, prefixes: tuple[str, ...] = TRACKING_PREFIXES) -> str:
    """The form of `url` that two links to the same page share: scheme and host
    lower-cased, default port, fragment and tracking parameters dropped, other
    parameters kept in order, an empty path as "/". Anything that is not an absolute
    URL with a host comes back stripped, unchanged otherwise."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    scheme = parts.scheme.lower()
    netloc = _canonical_netloc(parts.netloc, scheme)
    path = parts.path or "/"
    return urlunsplit((scheme, netloc, path, _without_tracking(parts.query, prefixes), ""))


def _canonical_netloc(netloc: str, scheme: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    # An IPv6 literal has colons of its own: a port comes after the "]".
    colon = hostport.rfind(":")
    if colon > hostport.rfind("]"):
        host, port = hostport[:colon], hostport[colon + 1:]
    else:
        host, port = hostport, ""
    if port == _DEFAULT_PORTS.get(scheme):
        port = ""
    return f"{userinfo}{at}{host.lower()}" + (f":{port}" if port else "")


def _without_tracking(query: str, prefixes: tuple[str, ...]) -> str:
    kept = [
        param for param in query.split("&")
        if param and not _is_tracking(param.partition("=")[0], prefixes)
    ]
    return "&".join(kept)


def _is_tracking(name: str, prefixes: tuple[str, ...]) -> bool:
    name = name.lower()
    return name in TRACKING_PARAMETERS or name.startswith(prefixes)


def content_fingerprint(title: str, summary: str) -> str:
    """sha256 (hex) of the case-folded, whitespace-collapsed title and summary."""
    text = _folded(title) + "\n" + _folded(summary)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


def item_key(item: Item, *, use_guid: bool = True, prefixes: tuple[str, ...] = TRACKING_PREFIXES) -> str:
    """Identity of an item within its feed: "guid:<guid>", else "url:<canonical link>",
    else "hash:<content fingerprint>". A key longer than MAX_KEY_LENGTH keeps its kind
    and hashes the value: "guid#sha256:<hex>" / "url#sha256:<hex>". `use_guid=False`
    skips a guid that does not identify the item (one the document gives several items)."""
    if item.guid and use_guid:
        return _bounded("guid", item.guid)
    link = _story_url(item, prefixes)
    if link:
        return _bounded("url", link)
    return "hash:" + content_fingerprint(item.title, item.summary)


def item_keys(item: Item, *, use_guid: bool = True) -> tuple[str, ...]:
    """The item's key, then the other keys earlier releases gave it (the item is known
    if any of them is)."""
    return _with_legacy(item, lambda prefixes: item_key(item, use_guid=use_guid, prefixes=prefixes))


def story_key(item: Item, prefixes: tuple[str, ...] = TRACKING_PREFIXES) -> str | None:
    """Identity of the story across feeds: its canonical link (as "url#sha256:<hex>"
    when longer than MAX_KEY_LENGTH); None when there is no link to a story."""
    url = _story_url(item, prefixes)
    if url is None:
        return None
    return url if len(url) <= MAX_KEY_LENGTH else _hashed("url", url)


def story_keys(item: Item) -> tuple[str | None, ...]:
    """The item's story key, then the other story keys earlier releases gave it."""
    return _with_legacy(item, lambda prefixes: story_key(item, prefixes))


def _with_legacy(item: Item, key_under: Callable[[tuple[str, ...]], T]) -> tuple[T, ...]:
    keys = [key_under(TRACKING_PREFIXES)]
    link = (item.link or "").lower()
    for prefixes in LEGACY_PREFIXES:
        # The rules differ only on a link with a parameter that only the new ones drop.
        if any(p in link for p in TRACKING_PREFIXES if p not in prefixes) and (key := key_under(prefixes)) not in keys:
            keys.append(key)
    return tuple(keys)


def _story_url(item: Item, prefixes: tuple[str, ...]) -> str | None:
    """The canonical link, unless it is a site's front page: feeds that have no
    per-item URL link every item to the home page, which identifies none of them."""
    if not item.link:
        return None
    url = canonical_url(item.link, prefixes)
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return None if parts.path == "/" and not parts.query else url


def _bounded(kind: str, value: str) -> str:
    key = f"{kind}:{value}"
    return key if len(key) <= MAX_KEY_LENGTH else _hashed(kind, value)


def _hashed(kind: str, value: str) -> str:
    return f"{kind}#sha256:{hashlib.sha256(value.encode('utf-8')).hexdigest()}"


def hashed_story_keys(item: Item, feed_url: str, key: str) -> tuple[str, ...]:
    """Across feeds a story is its canonical URL; an item without a link is its own story.
    Its key, then those earlier releases' rules gave it."""
    hashed = [hashlib.sha256((story or f"{feed_url}\n{key}").encode()).hexdigest()
              for story in story_keys(item)]
    return tuple(dict.fromkeys(hashed))


@dataclass(frozen=True)
class Identified:
    """A parsed item with every identity the pipeline looks it up by."""

    item: Item
    keys: tuple[str, ...]     # its key within the feed, then those earlier releases gave it
    stories: tuple[str, ...]  # its hashed story key, then those earlier releases gave it
    shared_guid: bool         # the document gives its guid to other items as well
    fingerprint: Fingerprint | None = None  # of its text, to find other reports of its story

    @property
    def key(self) -> str:
        return self.keys[0]


def identify(items: Sequence[Item], feed_url: str) -> list[Identified]:
    """The items of one document with their identities, in document order; of several
    items with one key, the first.

    A guid the document gives to several items identifies none of them: those items are
    keyed by their link (or text) instead."""
    guids = Counter(item.guid for item in items if item.guid)
    found: dict[str, Identified] = {}
    for item in items:
        shared = item.guid is not None and guids[item.guid] > 1
        keys = item_keys(item, use_guid=not shared)
        if keys[0] not in found:
            found[keys[0]] = Identified(item, keys, hashed_story_keys(item, feed_url, keys[0]), shared,
                                        fingerprint(item.title, item.summary))
    return list(found.values())
