"""Benchmark: matching real headlines against many topics, indexed and one topic at a time.

    python benchmarks/match_topics.py [--counts 10,100,1000,10000] [--seed 8] [--loop-sample 600]

Reads the 6,234 headlines of ../shared/corpus/headlines/items.jsonl (or $MONITOR_CORPUS),
HTML stripped as the parser does, and generates realistic topics from their vocabulary
with a fixed seed: entities, alternatives, phrases, prefixes, NEAR pairs, title: and
summary: terms, {case-sensitive} acronyms and exclusions. For each topic count it writes
the topics to a TOML config, loads it as `monitor` does (parse, validate, compile every
query) and builds the query index, then measures, on one core, items per second for
prepare + the index (`TopicIndex.matches`) over every headline, and for prepare + the
evaluate-every-topic loop (on the first --loop-sample headlines above 1,000 topics, so
that it finishes). Both must find the same matches; the run stops if they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monitor.config import load_config  # noqa: E402
from monitor.parse import strip_html  # noqa: E402
from monitor.query import Document, Query, compile_query, prepare  # noqa: E402
from monitor.topic_index import COMMON_WORDS, TopicIndex, requirement  # noqa: E402
from monitor.words import has_prefix, tokenise  # noqa: E402

Text = tuple[str, str]  # (title, summary), plain text
Result = list[list[tuple[str, list[str]]]]  # per item, (topic, matched words) in config order


def read_headlines(corpus: Path) -> list[Text]:
    texts = []
    for line in (corpus / "headlines" / "items.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        summary = record.get("summary")
        summary = "" if summary in (None, "None") else summary
        texts.append((strip_html(record.get("title") or ""), strip_html(summary)))
    return texts


class Vocabulary:
    """What the topics are made of, drawn from the headlines' titles: words with their
    case, pairs of adjacent words, and how many items (title or summary) hold each word."""

    def __init__(self, texts: list[Text]):
        self.items = Counter(w.casefold() for title, summary in texts
                             for w in set(tokenise(title)) | set(tokenise(summary)))
        titles = [tokenise(title) for title, _ in texts]
        seen: Counter[str] = Counter(w for words in titles for w in words)
        limit = len(texts) // 20  # a topic word that a twentieth of the items hold is no topic
        def usable(word: str) -> bool:
            return (len(word) >= 3 and word.casefold() not in COMMON_WORDS and not word.isdigit()
                    and 2 <= self.items[word.casefold()] <= limit)
        self.entities = sorted(w for w in seen if w[0].isupper() and usable(w))
        self.words = sorted({w.casefold() for w in seen if usable(w)})
        self.acronyms = sorted(w for w in seen if w.isupper() and w.isalpha() and 2 <= len(w) <= 5
                               and self.items[w.casefold()] >= 2)
        pairs: Counter[tuple[str, str]] = Counter(
            (a, b) for words in titles for a, b in zip(words, words[1:]) if usable(a) and usable(b))
        self.phrases = sorted(f"{a} {b}" for (a, b), n in pairs.items() if n >= 2)
        self.stems = sorted({w.casefold()[: len(w) - 2] for w in self.words if len(w) >= 8})


def generate_topics(vocabulary: Vocabulary, count: int, seed: int) -> list[str]:
    """`count` queries in the shapes a newsroom writes, from the headlines' vocabulary."""
    rng = random.Random(seed)
    v = vocabulary

    def entity() -> str:
        return rng.choice(v.entities)

    def word() -> str:
        return rng.choice(v.words)

    def phrase() -> str:
        return f'"{rng.choice(v.phrases)}"'

    def stem() -> str:
        return rng.choice(v.stems) + "*"

    def alternatives() -> str:
        return "(" + " OR ".join(rng.choice([entity, phrase, stem])() for _ in range(rng.randint(2, 4))) + ")"

    def exclusion() -> str:
        if rng.random() < 0.5:
            return f"-{word()}"
        return f"NOT ({word()} OR {phrase()})"

    shapes = [
        lambda: entity(),
        lambda: f"{entity()} OR {entity()}",
        lambda: phrase(),
        lambda: f"{phrase()} OR {entity()}",
        lambda: f"{stem()} {entity()}",
        lambda: f"{entity()} NEAR/5 {word()}",
        lambda: f"({entity()} OR {entity()}) NEAR/3 {stem()}",
        lambda: f"title:{entity()}",
        lambda: f"title:{phrase()} OR summary:({entity()} {word()})",
        lambda: f"{entity()} {exclusion()}",
        lambda: f"{alternatives()} AND ({word()} OR {stem()}) {exclusion()}",
        lambda: f"{{{rng.choice(v.acronyms)}}} {word()}",
        lambda: f"{entity()} {entity()} -title:{word()}",
    ]
    return [rng.choice(shapes)() for _ in range(count)]


def write_config(path: Path, queries: list[str]) -> None:
    lines = ['[[webhooks]]\nname = "bench"\nurl = "http://127.0.0.1:9/bench"\n',
             '[[feeds]]\nurl = "http://127.0.0.1:9/feed.xml"\n']
    for i, query in enumerate(queries):
        lines.append(f"[[topics]]\nname = \"topic-{i}\"\nquery = {json.dumps(query, ensure_ascii=False)}\n")
    path.write_text("\n".join(lines), encoding="utf-8")


Match = Callable[[Text], list[tuple[str, list[str]]]]  # one item's matches, in config order


def indexed(index: TopicIndex[str]) -> Match:
    return lambda text: index.matches(prepare(*text))


def every_topic(topics: list[tuple[str, Query]]) -> Match:
    def match(text: Text) -> list[tuple[str, list[str]]]:
        doc: Document = prepare(*text)
        return [(name, m) for name, query in topics if (m := query.match(doc))]
    return match


def per_second(matcher: Callable[[], Match], texts: list[Text], repeat: int = 3) -> tuple[float, Result]:
    """Items per second, of CPU time (the best of `repeat` passes, each with a new
    `matcher()`, made untimed), and the matches of a last pass, not timed. The timed passes keep
    only a count, as the daemon keeps nothing of an item's matches once it has stored
    them: holding every item's matches made the cyclic garbage collector walk them, and
    the 10,000 compiled queries with them, again and again, which cost more than matching."""
    best = float("inf")
    for _ in range(repeat):
        match = matcher()
        started = time.process_time()
        found = sum(len(match(text)) for text in texts)
        best = min(best, time.process_time() - started)
    result = [match(text) for text in texts]
    if sum(map(len, result)) != found:
        sys.exit("a timed pass and the checked pass found different matches")
    return len(texts) / best, result


def prefix_lookups(docs: list[Document], stems: frozenset[str]) -> list[tuple[str, float]]:
    """Per item, which of `stems` its words start with, five ways: µs per item, best of 3.
    All must find the same stems."""
    lengths = sorted({len(s) for s in stems})
    ordered = sorted(stems)
    trie: dict = {}
    for stem in stems:
        node = trie
        for char in stem:
            node = node.setdefault(char, {})
        node[""] = stem

    def by_length(doc: Document) -> set[str]:
        return {w[:n] for w in doc.words for n in lengths if n <= len(w) and w[:n] in stems}

    memory: dict[str, tuple[str, ...]] = {}  # word → its stems, for words that have any
    remembered: set[str] = set()  # the words in `memory`
    seen: set[str] = set()

    def by_length_remembered(doc: Document) -> set[str]:
        # As TopicIndex does it: set operations in C find the new words and those with stems.
        for w in doc.words - seen:
            hit = tuple(w[:n] for n in lengths if n <= len(w) and w[:n] in stems)
            if hit:
                memory[w] = hit
                remembered.add(w)
            seen.add(w)
        return {stem for w in doc.words & remembered for stem in memory[w]}

    def bisect_each_stem(doc: Document) -> set[str]:
        vocabulary = doc.vocabulary
        return {s for s in ordered if has_prefix(vocabulary, s)}

    def trie_walk(doc: Document) -> set[str]:
        found = set()
        for w in doc.words:
            node = trie
            for char in w:
                node = node.get(char)
                if node is None:
                    break
                if "" in node:
                    found.add(node[""])
        return found

    ways: list[tuple[str, Callable[[Document], set[str]]]] = [
        ("dict of stems by length, each word", by_length),
        ("the same, each word's stems remembered (monitor)", by_length_remembered),
        ("bisect of each stem into the item's sorted words", bisect_each_stem),
        ("trie walk, each word", trie_walk),
    ]
    try:
        import ahocorasick  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        automaton = ahocorasick.Automaton()
        for stem in stems:
            automaton.add_word(" " + stem, stem)
        automaton.make_automaton()

        def aho_corasick(doc: Document) -> set[str]:
            return {stem for _, stem in automaton.iter(" " + " ".join(doc.words))}
        ways.append(("pyahocorasick over the item's words", aho_corasick))
    expected = [by_length(doc) for doc in docs]
    out = []
    for name, way in ways:
        memory.clear()
        remembered.clear()
        seen.clear()
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            found = [way(doc) for doc in docs]
            best = min(best, time.process_time() - started)
        if found != expected:
            sys.exit(f"prefix lookup {name!r} disagrees")
        out.append((name, best / len(docs) * 1e6))
    return out


def main(argv: list[str] | None = None) -> int:
    default_corpus = Path(os.environ.get("MONITOR_CORPUS", REPO.parent / "shared" / "corpus"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=default_corpus)
    parser.add_argument("--counts", default="10,100,1000,10000", help="topic counts, comma-separated")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--loop-sample", type=int, default=600,
                        help="headlines for the every-topic loop above 1,000 topics")
    parser.add_argument("--no-prefixes", dest="prefixes", action="store_false",
                        help="skip the comparison of ways to look prefixes up")
    args = parser.parse_args(argv)
    if not (args.corpus / "headlines" / "items.jsonl").is_file():
        sys.exit(f"corpus not found at {args.corpus} (set MONITOR_CORPUS or pass --corpus)")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    texts = read_headlines(args.corpus)
    vocabulary = Vocabulary(texts)
    words = sum(len(tokenise(t)) + len(tokenise(s)) for t, s in texts) / len(texts)
    print(f"{len(texts)} headlines, {words:.0f} words each on average (title + summary); "
          f"vocabulary: {len(vocabulary.entities)} entities, {len(vocabulary.phrases)} phrases, "
          f"{len(vocabulary.stems)} stems; seed {args.seed}\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(c) for c in args.counts.split(",")):
            queries = generate_topics(vocabulary, count, args.seed)
            path = Path(tmp) / f"topics-{count}.toml"
            write_config(path, queries)
            started = time.perf_counter()
            config = load_config(path)
            loaded = time.perf_counter()
            topics = [(t.name, t.query) for t in config.topics]
            index = TopicIndex(topics)
            built = time.perf_counter()
            # A new index for each pass: its memory of which words start with which stems
            # starts empty, as after a reload.
            fast, found = per_second(lambda: indexed(TopicIndex(topics)), texts, repeat=5)
            sample = texts if count <= 1000 else texts[: args.loop_sample]
            slow, expected = per_second(lambda: every_topic(topics), sample, repeat=3 if count <= 100 else 1)
            if found[: len(sample)] != expected:
                sys.exit(f"{count} topics: the index and the every-topic loop disagree")
            candidates = sum(len(index.candidates(prepare(t, s))) for t, s in texts) / len(texts)
            matches = sum(len(m) for m in found) / len(texts)
            rows.append((count, loaded - started, built - loaded, len(index.always), candidates, matches,
                         fast, slow, len(sample)))
    print("| topics | config load | index build | always checked | candidates / item | matches / item "
          "| indexed items/s | every-topic items/s | speed-up |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for count, load, build, always, candidates, matches, fast, slow, sampled in rows:
        note = "" if sampled == len(texts) else f" ({sampled} items)"
        print(f"| {count:,} | {load:.2f} s | {build:.2f} s | {always} | {candidates:.1f} | {matches:.2f} "
              f"| {fast:,.0f} | {slow:,.0f}{note} | {fast / slow:.1f}× |")
    base = rows[0]
    for count, *_, fast, _slow, _n in rows[1:]:
        print(f"cost per item at {count:,} topics: {base[6] / fast:.2f}× the cost at {base[0]:,}")
    if args.prefixes:
        largest = generate_topics(vocabulary, max(int(c) for c in args.counts.split(",")), args.seed)
        stems = frozenset(k[:-1] for q in largest for g in requirement(compile_query(q).root) for k in g
                          if k.endswith("*") and ":" not in k)
        docs = [prepare(t, s) for t, s in texts]
        print(f"\nWhich of {len(stems):,} stems each item's words start with (the stems of the largest topic set):\n")
        print("| way | µs per item |\n|---|---:|")
        for name, micros in prefix_lookups(docs, stems):
            print(f"| {name} | {micros:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
