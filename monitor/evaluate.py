"""Score topic queries against hand-labelled items (pure: callers read the files)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from monitor.config import TopicConfig
from monitor.parse import strip_html
from monitor.query import prepare

Labels = Mapping[str, Mapping[str, bool]]  # item id → topic name → is the item about it


@dataclass(frozen=True)
class Score:
    """One topic's confusion counts over the labelled items."""

    topic: str
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def positives(self) -> int:
        """Items labelled as about the topic."""
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        # A query that alerts on nothing has raised no false alarm; recall shows the cost.
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        # Nothing labelled means nothing could be missed.
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class Misses:
    """The ids a topic got wrong, in item order, for reading."""

    topic: str
    false_positives: tuple[str, ...]
    false_negatives: tuple[str, ...]


def read_items(lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    """items.jsonl lines → (id, title, summary) as plain text, HTML stripped by the
    parser's own `strip_html` so queries see what the daemon sees. The archives wrote a
    missing summary as null or "None"."""
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        summary = record.get("summary")
        summary = "" if summary in (None, "None") else summary
        yield record["id"], strip_html(record.get("title") or ""), strip_html(summary)


def read_labels(lines: Iterable[str]) -> dict[str, dict[str, bool]]:
    """labels TSV lines (`#` comments, a header `id<TAB>topic...`, then 1/0 per topic)."""
    rows = (line.rstrip("\n").split("\t") for line in lines if line.strip() and line[0] != "#")
    topics = next(rows)[1:]
    return {row[0]: {t: v.strip() == "1" for t, v in zip(topics, row[1:], strict=True)}
            for row in rows}


def score_topics(
    items: Iterable[tuple[str, str, str]], labels: Labels, topics: Sequence[TopicConfig]
) -> list[Score]:
    """Match every labelled item against every topic; counts in `topics` order."""
    counts = {t.name: [0, 0, 0, 0] for t in topics}  # tp, fp, fn, tn
    slot = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}
    for _, topic, matched, wanted in _verdicts(items, labels, topics):
        counts[topic][slot[matched, wanted]] += 1
    return [Score(name, *c) for name, c in counts.items()]


def misses(
    items: Iterable[tuple[str, str, str]], labels: Labels, topics: Sequence[TopicConfig]
) -> list[Misses]:
    """Per topic, the labelled items it matched wrongly and those it failed to match."""
    wrong: dict[str, tuple[list[str], list[str]]] = {t.name: ([], []) for t in topics}
    for item_id, topic, matched, wanted in _verdicts(items, labels, topics):
        if matched != wanted:
            wrong[topic][0 if matched else 1].append(item_id)
    return [Misses(name, tuple(fps), tuple(fns)) for name, (fps, fns) in wrong.items()]


def _verdicts(
    items: Iterable[tuple[str, str, str]], labels: Labels, topics: Sequence[TopicConfig]
) -> Iterator[tuple[str, str, bool, bool]]:
    """(item id, topic, matched, labelled) for every labelled item and topic."""
    _check_labelled(labels, topics)
    seen: set[str] = set()
    for item_id, title, summary in items:
        if item_id not in labels:
            continue
        seen.add(item_id)
        doc = prepare(title, summary)
        for topic in topics:
            matched = topic.query.match(doc) is not None
            yield item_id, topic.name, matched, labels[item_id][topic.name]
    # A silently shorter evaluation would report flattering figures for the wrong set.
    if missing := labels.keys() - seen:
        raise ValueError(f"{len(missing)} labelled items not among the items, e.g. {min(missing)}")


def _check_labelled(labels: Labels, topics: Sequence[TopicConfig]) -> None:
    for item_id, row in labels.items():
        if unlabelled := [t.name for t in topics if t.name not in row]:
            raise ValueError(f"item {item_id} has no label for topic {', '.join(unlabelled)}")
