"""The query index (a presearcher): which topics an item could match, from its words alone (pure).

Like Lucene's Monitor (Luwak) and Elasticsearch's percolator it indexes the queries, not
the items. Each compiled query yields groups of keys, and an item can match the query
only if it holds a key of every group. A key is a folded word, a prefix stem written
`stem*`, either of them restricted to the title as `title:word` or `title:stem*`. Each
topic is filed under the keys of its most selective group; per item, the index looks up
the topics filed under the item's keys, keeps those whose other groups the item also
holds (set operations), and runs the exact matcher on those alone. So the result is the
same as matching every topic, in the same order, at a cost that grows with the topics an
item could match rather than with all of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from typing import TYPE_CHECKING, Generic, TypeVar

from monitor.query import And, Document, Leaf, Near, Node, Not, Or, Phrase, Prefix, Query, Term

if TYPE_CHECKING:
    from monitor.matching import Matcher

T = TypeVar("T")

# Words so frequent in English text that a query leaning on one would be checked for most
# items: when a query offers a choice (the children of an AND, the sides of a NEAR, the
# words of a phrase), one of these is the last resort. Only the choice depends on them.
COMMON_WORDS = frozenset("""
a about after against all also an and any are as at be been before but by can could did do
does for from had has have he her his how i if in into is it its just may more most new no
not now of off on one only or other our out over says said she so some than that the their
them then there these they this to too two up us was we were what when where which while
who why will with would year years you your
""".split())

Group = frozenset[str]  # keys: an item must hold one of them
Requirement = tuple[Group, ...]  # an item must hold a key of every group


def requirement(node: Node) -> Requirement:
    """What an item must contain for `node` to hold: groups of keys, an item must hold a
    key of each. No groups: the node can hold with none of its words (a NOT).

    A word is its own group, and so is each word of a phrase. AND: the groups of all its
    children. OR: one group, each child's most selective group joined; none if a child has
    none. NEAR: one group per side, of its alternatives' most selective groups. `{...}`
    case, word order and distance are left to the exact matcher."""
    if isinstance(node, (Term, Prefix, Phrase)):
        return tuple(frozenset((key,)) for key in dict.fromkeys(_leaf_keys(node)))
    if isinstance(node, Not):
        return ()
    if isinstance(node, And):
        return _distinct(group for child in node.children for group in requirement(child))
    if isinstance(node, Or):
        either = _any_of(node.children)
        return () if either is None else (either,)
    if isinstance(node, Near):
        sides = (_any_of(node.left), _any_of(node.right))
        return _distinct(side for side in sides if side is not None)
    raise TypeError(f"not a query node: {node!r}")


def alternatives(node: Node) -> tuple[Node, ...]:
    """The parts of a query any one of which makes it hold. Each is filed on its own: an
    item is then a candidate only if it holds every group of one of them, not merely a
    word of any (`"peace talks" OR Putin` is not worth checking for each item with "talks")."""
    return node.children if isinstance(node, Or) else (node,)


def decided(node: Node) -> bool:
    """Whether `node` holds for every item that holds every group of requirement(node):
    words and prefixes (anywhere, or in the title) joined by AND, and OR of such words."""
    if isinstance(node, (Term, Prefix)):
        return node.exact is None and node.field in (None, "title")
    if isinstance(node, And):
        return all(decided(child) for child in node.children)
    if isinstance(node, Or):  # its one group is its children's keys
        return all(isinstance(child, (Term, Prefix)) and decided(child) for child in node.children)
    return False


def _leaf_keys(leaf: Leaf) -> list[str]:
    # Only the title is worth a key of its own: the summary is most of an item, and a set
    # of its words per item would cost more than the few topics it rules out.
    field = "title:" if leaf.field == "title" else ""
    if isinstance(leaf, Term):
        return [field + leaf.word]
    if isinstance(leaf, Prefix):
        return [f"{field}{leaf.stem}*"]
    return [field + word for word in leaf.words]


def _any_of(alternatives: Iterable[Node]) -> Group | None:
    """One group that an item holding any of `alternatives` holds a key of."""
    keys: set[str] = set()
    for alternative in alternatives:
        groups = requirement(alternative)
        if not groups:
            return None
        keys |= min(groups, key=cost)
    return frozenset(keys)


def _distinct(groups: Iterable[Group]) -> Requirement:
    return tuple(dict.fromkeys(groups))


def cost(keys: Iterable[str]) -> float:
    """A guess at how many items hold one of `keys`, relative: longer words are rarer, a
    short stem opens onto many words, a common word is nearly everywhere, and a title is
    a small part of an item."""
    return sum(_key_cost(key) for key in keys)


def _key_cost(key: str) -> float:
    field, _, word = key.rpartition(":")  # a word has no ":"; a field prefix ends in one
    scale = 0.5 if field == "title" else 1.0
    if word.endswith("*"):
        stem = word[:-1]
        return scale * (1.0 if len(stem) <= 2 or stem in COMMON_WORDS else 2.0 * 0.7 ** len(stem))
    if word in COMMON_WORDS:
        return scale
    if word.isdigit():  # years and counts recur
        return scale * 0.5
    return scale * 0.7 ** len(word)


class TopicIndex(Generic[T]):
    """Topics (anything, each with its compiled query) indexed by the keys of their
    queries; built once per config, then read by any number of threads."""

    def __init__(self, topics: Iterable[tuple[T, Query]]):
        entries = list(topics)
        self.topics: tuple[T, ...] = tuple(topic for topic, _ in entries)
        self.queries: tuple[Query, ...] = tuple(query for _, query in entries)
        # key → the topics filed under it that need nothing else, the exact matcher aside,
        # and those that need nothing else at all (decided by the index)
        plain: dict[str, list[int]] = {}
        sure: dict[str, list[int]] = {}
        # key → a key of the topic's second group → (topic, its groups after those two,
        # whether holding them decides the topic): pairs looked up with set operations
        # rule out most topics before any Python loop reaches them
        paired: dict[str, dict[str, list[tuple[int, Requirement, bool]]]] = {}
        always: list[int] = []
        keys: set[str] = set()
        for ordinal, query in enumerate(self.queries):
            options = [(part, sorted(requirement(part), key=cost)) for part in alternatives(query.root)]
            if not all(groups for _, groups in options):
                always.append(ordinal)
                continue
            for part, groups in options:
                settled = len(groups) <= 1 + _CHECKED and decided(part)
                rest = tuple(groups[2 : 1 + _CHECKED])
                for key in groups[0]:
                    if len(groups) == 1:
                        (sure if settled else plain).setdefault(key, []).append(ordinal)
                        continue
                    by_second = paired.setdefault(key, {})
                    for second in groups[1]:
                        by_second.setdefault(second, []).append((ordinal, rest, settled))
                keys.update(*groups[: 1 + _CHECKED])
        self._plain, self._sure = plain, sure
        self._paired = {key: (frozenset(by_second), by_second) for key, by_second in paired.items()}
        self.always: tuple[int, ...] = tuple(always)  # checked for every item
        # Sets, not dict views: `words & dict.keys()` copies every key into a new set first.
        self._plain_keys = frozenset(plain)
        self._sure_keys = frozenset(sure)
        self._paired_keys = frozenset(paired)
        self._keys = frozenset(keys)
        self._words = frozenset(k for k in keys if ":" not in k and not k.endswith("*"))
        self._stems = frozenset(k.rpartition(":")[2][:-1] for k in keys if k.endswith("*"))
        self._stem_lengths = tuple(sorted({len(stem) for stem in self._stems}))
        self._title_words = frozenset(k[6:] for k in keys if k.startswith("title:") and not k.endswith("*"))
        self._learnt = _Learnt()
        self._matchers: list[Matcher | None] = [None] * len(self.queries)

    def __len__(self) -> int:
        return len(self.topics)

    def keys_in(self, doc: Document) -> set[str]:
        """The index's keys that `doc` holds."""
        learnt = self._learnt
        if len(learnt.seen) >= _LEARNT_MAX:  # a bound for a daemon that reads for months
            learnt = self._learnt = _Learnt()
        words = doc.words
        for word in words - learnt.seen:
            self._learn(learnt, word)
        present: set[str] = set()
        keys, title_keys = learnt.keys, learnt.title_keys
        for word in words & learnt.keyed:
            present.update(keys[word])
        if learnt.title_keyed:
            for word in doc.title.wordset & learnt.title_keyed:
                present.update(title_keys[word])
        return present

    def _learn(self, learnt: _Learnt, word: str) -> None:
        """Which of the index's keys `word` gives an item that holds it, anywhere and in
        the title: the word itself and the stems it starts with. Written before the word
        is marked seen, so that a reader on another thread that finds it seen finds its keys."""
        size, known = len(word), self._stems
        stems = [word[:n] + "*" for n in self._stem_lengths if n <= size and word[:n] in known]
        if word in self._words:
            learnt.keys[word] = (word, *stems)
            learnt.keyed.add(word)
        elif stems:
            learnt.keys[word] = tuple(stems)
            learnt.keyed.add(word)
        if word in self._title_words or stems:  # most words are neither
            in_title = [scoped for key in (word, *stems) if (scoped := "title:" + key) in self._keys]
            if in_title:
                learnt.title_keys[word] = tuple(in_title)
                learnt.title_keyed.add(word)
        learnt.seen.add(word)

    def candidates(self, doc: Document) -> list[int]:
        """Ordinals, ascending, of the topics that could match `doc`; no other can."""
        found, sure = self._candidates(doc)
        return sorted(found | sure)

    def _candidates(self, doc: Document) -> tuple[set[int], set[int]]:
        """The topics that could match `doc`, and those of them that do (their query is
        what the index checked)."""
        present = self.keys_in(doc)
        found: set[int] = set(self.always)
        sure: set[int] = set()
        plain, settled, paired = self._plain, self._sure, self._paired
        for key in present & self._plain_keys:
            found.update(plain[key])
        for key in present & self._sure_keys:
            sure.update(settled[key])
        for key in present & self._paired_keys:
            seconds, by_second = paired[key]
            for second in present & seconds:
                for ordinal, rest, decides in by_second[second]:
                    for group in rest:
                        if present.isdisjoint(group):
                            break
                    else:
                        (sure if decides else found).add(ordinal)
        return found, sure

    def matches(self, doc: Document, skip: Set[int] = frozenset()) -> list[tuple[T, list[str]]]:
        """(topic, matched words) for every topic that matches `doc`, in the order the
        topics were given, leaving out the ordinals in `skip`: exactly what matching each
        topic's query in turn would give."""
        out = []
        topics, matchers = self.topics, self._matchers
        found, sure = self._candidates(doc)
        for ordinal in sorted(found | sure):
            if ordinal in skip:
                continue
            matcher = matchers[ordinal]
            if matcher is None:  # compiled on first use, by whichever thread gets there
                matcher = matchers[ordinal] = self.queries[ordinal].matcher
            if (ordinal in sure or matcher.holds(doc)) and (matched := matcher.report(doc)):
                out.append((topics[ordinal], matched))
        return out

    def requirement(self, ordinal: int) -> Requirement:
        """The groups of keys the topic's query needs, most selective first, for explaining."""
        return tuple(sorted(requirement(self.queries[ordinal].root), key=cost))


class _Learnt:
    """The index's keys that item words give, learnt as words are met: news reuses its
    words, so each word is looked up against the keys and stems once, and an item's keys
    are then one set operation in C and a few dict lookups away."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.keys: dict[str, tuple[str, ...]] = {}  # word → its keys anywhere, when it has any
        self.keyed: set[str] = set()  # the words in `keys`
        self.title_keys: dict[str, tuple[str, ...]] = {}  # word → its `title:` keys, when it has any
        self.title_keyed: set[str] = set()


_CHECKED = 3  # groups besides the filed one checked per candidate: enough to rule most out
_LEARNT_MAX = 200_000
