"""Pair precision and recall of the near-duplicate test on labelled real headlines.

    python benchmarks/story_pairs.py [--sweep] [--show]

Reads tests/data/story_pairs.tsv (pairs of ids of ../shared/corpus/headlines/items.jsonl,
or $MONITOR_CORPUS, labelled dup / distinct / event by reading both items) and asks
monitor.neardup whether each pair is one story, with the items' text as the parser would
give it (HTML stripped). Precision and recall count dup and distinct pairs; event pairs
(separate write-ups of one event) are reported apart. Also: the cost of a fingerprint and
how many indexed items an item's bands lead to over the whole corpus (the candidates a
check compares exactly). --sweep prints precision and recall across thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor import neardup  # noqa: E402
from monitor.dates import parse_date  # noqa: E402
from monitor.parse import strip_html  # noqa: E402

PAIRS = REPO / "tests" / "data" / "story_pairs.tsv"


def corpus() -> Path:
    path = Path(os.environ.get("MONITOR_CORPUS", REPO.parent / "shared" / "corpus"))
    if not (path / "headlines" / "items.jsonl").is_file():
        sys.exit(f"the shared corpus is not at {path}: set MONITOR_CORPUS to its path")
    return path


def read_items(path: Path) -> tuple[dict[str, tuple[str, str]], dict[str, datetime | None]]:
    """Each item's text as the parser gives it, and when it was published."""
    texts, published = {}, {}
    for line in (path / "headlines" / "items.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        summary = record.get("summary")
        texts[record["id"]] = (strip_html(record.get("title") or ""),
                               "" if summary in (None, "None") else strip_html(summary))
        published[record["id"]] = parse_date(record.get("published"))
    return texts, published


def within(window: timedelta, published: dict[str, datetime | None]):
    """Whether two items can meet in the story window: both dated more than `window`
    apart cannot (an undated item is given the benefit of the doubt)."""
    def meet(a: str, b: str) -> bool:
        when_a, when_b = published[a], published[b]
        return when_a is None or when_b is None or abs(when_a - when_b) <= window
    return meet


def read_pairs() -> list[tuple[str, str, str]]:
    lines = [line for line in PAIRS.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    return [tuple(line.split("\t")[:3]) for line in lines[1:]]  # type: ignore[misc]


def score(pairs: list[tuple[str, str, str]], prints: dict, judge, meet=lambda a, b: True) -> dict:
    counts: Counter[tuple[str, bool]] = Counter()
    wrong = []
    for a, b, label in pairs:
        same = prints[a] is not None and prints[b] is not None and meet(a, b) and judge(prints[a], prints[b])
        counts[label, same] += 1
        if (label == "dup") != same and label != "event":
            wrong.append((a, b, label))
    tp, fp, fn = counts["dup", True], counts["distinct", True], counts["dup", False]
    return {"precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
            "tp": tp, "fp": fp, "fn": fn, "tn": counts["distinct", False],
            "events_joined": counts["event", True], "events": counts["event", True] + counts["event", False],
            "wrong": wrong}


def candidates(prints: dict) -> list[int]:
    """Per item, how many other items share a band with it (what a check compares)."""
    by_band = defaultdict(set)
    for key, fp in prints.items():
        if fp is not None:
            for band in fp.bands:
                by_band[band].add(key)
    counts = []
    for key, fp in prints.items():
        if fp is not None:
            counts.append(len(set().union(*(by_band[band] for band in fp.bands)) - {key}))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", action="store_true", help="precision and recall across thresholds")
    parser.add_argument("--show", action="store_true", help="print the misclassified pairs' text")
    args = parser.parse_args()
    texts, published = read_items(corpus())
    pairs = read_pairs()
    started = time.perf_counter()
    prints = {key: neardup.fingerprint(title, summary) for key, (title, summary) in texts.items()}
    cost = (time.perf_counter() - started) / len(texts)
    judge = lambda x, y: neardup.same_story(x.shingles, y.shingles)  # noqa: E731
    labels = Counter(label for _, _, label in pairs)
    print(f"{len(pairs)} labelled pairs ({labels['dup']} dup, {labels['distinct']} distinct, {labels['event']} event)")
    windowed = score(pairs, prints, judge, within(timedelta(hours=72), published))
    result = score(pairs, prints, judge)
    for name, figures in (("text alone", result), ("within the 72 h story window", windowed)):
        print(f"{name}: precision {figures['precision']:.3f}, recall {figures['recall']:.3f} "
              f"(tp {figures['tp']}, fp {figures['fp']}, fn {figures['fn']}, tn {figures['tn']}); "
              f"event pairs joined: {figures['events_joined']} of {figures['events']}")
    joined = [(a, b) for a, b, label in pairs if label == "dup" and prints[a] and prints[b]
              and judge(prints[a], prints[b])]
    banded = sum(1 for a, b in joined if set(prints[a].bands) & set(prints[b].bands))
    print(f"LSH: {banded} of the {len(joined)} dup pairs the test joins share a band (the index finds them)")
    found = candidates(prints)
    print(f"fingerprint: {1e6 * cost:.0f} µs per item; {sum(p is None for p in prints.values())} of {len(prints)} "
          f"items too short to fingerprint; candidates per item over {len(prints)} items: mean "
          f"{statistics.mean(found):.1f}, p99 {sorted(found)[int(0.99 * len(found))]}, max {max(found)}")
    for a, b, label in result["wrong"]:
        apart = (f"{abs(published[a] - published[b]).days} days apart" if published[a] and published[b]
                 else "one undated")
        print(f"  wrong (text alone): {a} {b} labelled {label}, {apart}")
        if args.show:
            for key in (a, b):
                print(f"      {texts[key][0][:100]} | {texts[key][1][:80]}")
    if args.sweep:
        for threshold in (0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9):
            def judged(x: neardup.Fingerprint, y: neardup.Fingerprint, t: float = threshold) -> bool:
                return neardup.match(neardup.read(x.shingles), neardup.read(y.shingles), title_threshold=t) is not None
            swept = score(pairs, prints, judged, within(timedelta(hours=72), published))
            print(f"  title threshold {threshold:.2f} (in the window): precision {swept['precision']:.3f}, recall {swept['recall']:.3f}, "
                  f"events joined {swept['events_joined']}")


if __name__ == "__main__":
    main()
