"""Measure a config's topics against the corpus's labelled development headlines."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from monitor.config import TopicConfig, load_config
from monitor.errors import ConfigError
from monitor.evaluate import Labels, Score, misses, read_items, read_labels, score_topics
from monitor.query import prepare

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    headlines = args.corpus / "headlines"
    if not (headlines / "items.jsonl").is_file():
        sys.exit(f"corpus not found at {args.corpus} (set MONITOR_CORPUS or pass --corpus)")
    try:
        config = load_config(args.config)
    except ConfigError as e:
        sys.exit(f"config invalid:\n{e}")

    items = list(read_items(_lines(headlines / "items.jsonl")))
    labels = read_labels(_lines(headlines / "labels-dev.tsv"))
    labelled = next(iter(labels.values()), {})
    topics = [t for t in config.topics if t.name in labelled]
    for skipped in (t.name for t in config.topics if t.name not in labelled):
        print(f"(topic {skipped} has no labels; not scored)")

    _print_scores(score_topics(items, labels, topics), len(labels))
    _print_timing(items, topics)
    if args.show_errors:
        _print_errors(items, labels, topics, args.show_errors)
    return 0


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    default_corpus = Path(os.environ.get("MONITOR_CORPUS", REPO.parent / "shared" / "corpus"))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", type=Path, default=REPO / "config.example.toml")
    parser.add_argument("--corpus", type=Path, default=default_corpus,
                        help="the shared corpus (default: $MONITOR_CORPUS or ../shared/corpus)")
    parser.add_argument("--show-errors", type=int, default=0, metavar="N",
                        help="print the first N false positive and negative titles per topic")
    return parser.parse_args(argv)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def _print_scores(scores: list[Score], labelled: int) -> None:
    print(f"{labelled} labelled items (labels-dev)\n")
    print(f"{'topic':<26} {'pos':>4} {'TP':>4} {'FP':>4} {'FN':>4} "
          f"{'prec':>6} {'recall':>6} {'F1':>6}")
    for s in scores:
        print(f"{s.topic:<26} {s.positives:>4} {s.tp:>4} {s.fp:>4} {s.fn:>4} "
              f"{s.precision:>6.3f} {s.recall:>6.3f} {s.f1:>6.3f}")


def _print_timing(items: list[tuple[str, str, str]], topics: list[TopicConfig]) -> None:
    # Over every item, labelled or not: the per-item cost the daemon pays on each new entry.
    start = time.perf_counter()
    for _, title, summary in items:
        doc = prepare(title, summary)
        for topic in topics:
            topic.query.match(doc)
    elapsed = time.perf_counter() - start
    print(f"\nprepared and matched {len(items)} items x {len(topics)} topics in "
          f"{elapsed * 1000:.0f} ms ({elapsed / max(len(items), 1) * 1e6:.0f} µs per item)")


def _print_errors(
    items: list[tuple[str, str, str]], labels: Labels, topics: list[TopicConfig], limit: int
) -> None:
    titles = {item_id: title for item_id, title, _ in items}
    for m in misses(items, labels, topics):
        for kind, ids in (("false positives", m.false_positives),
                          ("false negatives", m.false_negatives)):
            print(f"\n{m.topic}: {kind} ({len(ids)})")
            for item_id in ids[:limit]:
                print(f"  {item_id}  {titles[item_id]}")


if __name__ == "__main__":
    sys.exit(main())
