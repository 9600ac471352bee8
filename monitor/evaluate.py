"""Score topic queries against hand-labelled items, whole and by fold (pure: callers
read the files)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from monitor.config import TopicConfig
from monitor.errors import EvalError
from monitor.parse import strip_html
from monitor.query import prepare

Labels = Mapping[str, Mapping[str, bool]]  # item id → topic name → is the item about it


@dataclass(frozen=True)
class LabelledItem:
    """An item as the labellers read it: plain text, cleaned as the daemon cleans it."""

    id: str
    title: str
    summary: str


@dataclass(frozen=True)
class Verdict:
    """What one topic's query said about one labelled item, beside what the label says."""

    item_id: str
    topic: str
    matched: bool
    wanted: bool


@dataclass(frozen=True)
class Score:
    """One topic's confusion counts over a set of labelled items."""

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


@dataclass(frozen=True)
class FoldScores:
    """One topic's score on each fold (in fold order) of a K-fold split. The query is
    fixed, so each fold's score is a held-out figure for every fold it was not tuned on."""

    topic: str
    folds: tuple[tuple[int, Score], ...]  # (fold number, score on that fold's items)

    @property
    def mean_f1(self) -> float:
        return sum(s.f1 for _, s in self.folds) / len(self.folds)

    @property
    def min_f1(self) -> float:
        return min(s.f1 for _, s in self.folds)


def read_items(lines: Iterable[str]) -> Iterator[LabelledItem]:
    """items.jsonl lines → items as plain text, HTML stripped by the parser's own
    `strip_html` so queries see what the daemon sees. The archives wrote a missing
    summary as null or "None"."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            item_id = record["id"]
        except (ValueError, TypeError, KeyError) as e:
            raise EvalError(f"line {number}: not an item (a JSON object with an \"id\")") from e
        summary = record.get("summary")
        summary = "" if summary in (None, "None") else summary
        yield LabelledItem(str(item_id), strip_html(record.get("title") or ""), strip_html(summary))


def read_labels(lines: Iterable[str]) -> dict[str, dict[str, bool]]:
    """labels TSV lines: `#` comments, a header `id<TAB>topic...`, then a 1 or 0 per topic."""
    header: list[str] | None = None
    labels: dict[str, dict[str, bool]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        cells = [cell.strip() for cell in line.rstrip("\n").split("\t")]
        if header is None:
            header = cells[1:]
            if not header:
                raise EvalError(f"line {number}: the header names no topic (id<TAB>topic...)")
            continue
        if len(cells) != len(header) + 1:
            raise EvalError(f"line {number}: {len(cells) - 1} labels for {len(header)} topics")
        if bad := [v for v in cells[1:] if v not in ("0", "1")]:
            raise EvalError(f"line {number}: label {bad[0]!r} is not 1 or 0")
        if cells[0] in labels:
            raise EvalError(f"line {number}: item {cells[0]} is labelled twice")
        labels[cells[0]] = {t: v == "1" for t, v in zip(header, cells[1:], strict=True)}
    if header is None:
        raise EvalError("no header line (id<TAB>topic...)")
    return labels


def labelled_topics(labels: Labels) -> set[str]:
    """The topics every labelled item has a label for."""
    rows = iter(labels.values())
    first = next(rows, None)
    if first is None:
        return set()
    return set(first).intersection(*rows)


def judge(items: Iterable[LabelledItem], labels: Labels, topics: Sequence[TopicConfig]) -> list[Verdict]:
    """Match every labelled item against every topic, once: verdicts in item order, then
    `topics` order. Items without labels are skipped; a labelled item missing from
    `items`, or a topic some item has no label for, is an EvalError."""
    if missing := {t.name for t in topics} - labelled_topics(labels):
        raise EvalError(f"no labels for topic {', '.join(sorted(missing))}")
    verdicts: list[Verdict] = []
    seen: set[str] = set()
    for item in items:
        if item.id not in labels or item.id in seen:
            continue
        seen.add(item.id)
        doc = prepare(item.title, item.summary)
        row = labels[item.id]
        verdicts += [Verdict(item.id, t.name, t.query.match(doc) is not None, row[t.name]) for t in topics]
    # A silently shorter evaluation would report flattering figures for the wrong set.
    if missing := labels.keys() - seen:
        raise EvalError(f"{len(missing)} labelled items are not among the items, e.g. {min(missing)}")
    return verdicts


def score(verdicts: Iterable[Verdict], topics: Sequence[str], only: Collection[str] | None = None) -> list[Score]:
    """Per topic (in `topics` order), the counts over the verdicts; `only`: just these item ids."""
    counts = {name: [0, 0, 0, 0] for name in topics}  # tp, fp, fn, tn
    slot = {(True, True): 0, (True, False): 1, (False, True): 2, (False, False): 3}
    for v in verdicts:
        if v.topic in counts and (only is None or v.item_id in only):
            counts[v.topic][slot[v.matched, v.wanted]] += 1
    return [Score(name, *c) for name, c in counts.items()]


def misses(verdicts: Iterable[Verdict], topics: Sequence[str], only: Collection[str] | None = None) -> list[Misses]:
    """Per topic, the items it matched wrongly and those it failed to match."""
    wrong: dict[str, tuple[list[str], list[str]]] = {name: ([], []) for name in topics}
    for v in verdicts:
        if v.matched != v.wanted and v.topic in wrong and (only is None or v.item_id in only):
            wrong[v.topic][0 if v.matched else 1].append(v.item_id)
    return [Misses(name, tuple(fps), tuple(fns)) for name, (fps, fns) in wrong.items()]


def fold_of(item_id: str, k: int) -> int:
    """The fold (0 … k-1) an item belongs to: a hash of its id alone, so the split is the
    same on every machine and run, and an item keeps its fold when others are labelled."""
    return int.from_bytes(hashlib.sha256(item_id.encode()).digest()[:8], "big") % k


def split_folds(item_ids: Iterable[str], k: int) -> list[set[str]]:
    """The ids in each of k folds (disjoint; together every id)."""
    if k < 2:
        raise EvalError(f"cross-validation needs at least 2 folds, not {k}")
    folds: list[set[str]] = [set() for _ in range(k)]
    for item_id in item_ids:
        folds[fold_of(item_id, k)].add(item_id)
    return folds


def cross_validate(verdicts: Sequence[Verdict], topics: Sequence[str], k: int,
                   only_folds: Collection[int] | None = None) -> list[FoldScores]:
    """Per topic, its score on each fold (or on `only_folds`) of a k-fold split of the
    verdicts' items."""
    folds = split_folds({v.item_id for v in verdicts}, k)
    chosen = sorted(only_folds) if only_folds is not None else range(k)
    per_fold = [(n, score(verdicts, topics, folds[n])) for n in chosen]
    return [FoldScores(name, tuple((n, scores[i]) for n, scores in per_fold))
            for i, name in enumerate(topics)]
