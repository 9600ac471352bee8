"""Why a query matched an item or not: each clause, whether it held, and where (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.matching import holds, spans
from monitor.query import And, Leaf, Near, Node, Not, Or, Phrase, Prefix, Query, Term, unparse
from monitor.words import Document

HELD, FAILED = "✓", "✗"


@dataclass(frozen=True)
class Clause:
    """One node of a query, judged against one item."""

    text: str                          # the clause as query text, or "all of" / "any of"
    held: bool
    note: str = ""                     # where a term occurs; why a NEAR failed
    children: tuple[Clause, ...] = ()


def explain(query: Query, doc: Document) -> Clause:
    return _clause(query.root, doc)


def _clause(node: Node, doc: Document) -> Clause:
    held = holds(node)(doc)
    if isinstance(node, (Term, Prefix, Phrase)):
        return Clause(unparse(node), held, _where(node, doc))
    if isinstance(node, Not):
        inner = _clause(node.child, doc)
        if isinstance(node.child, (Term, Prefix, Phrase)):
            return Clause(f"NOT {inner.text}", held, inner.note)
        return Clause("NOT", held, children=(inner,))
    if isinstance(node, And):
        return Clause("all of", held, children=tuple(_clause(c, doc) for c in node.children))
    if isinstance(node, Or):
        return Clause("any of", held, children=tuple(_clause(c, doc) for c in node.children))
    if isinstance(node, Near):
        return Clause(unparse(node), held, _near_note(node, doc, held))
    raise TypeError(f"not a query node: {node!r}")


def _where(leaf: Leaf, doc: Document) -> str:
    """The fields a leaf occurs in (and, for a prefix, the words it met): "title",
    "summary: Negotiators, negotiations"."""
    parts = []
    for tokens in doc.fields:
        found = spans(leaf, tokens)
        if found:
            words = dict.fromkeys(s.label for s in found) if isinstance(leaf, Prefix) else {}
            parts.append(tokens.name + (": " + ", ".join(words) if words else ""))
    return "; ".join(parts)


def _near_note(near: Near, doc: Document, held: bool) -> str:
    sides = []
    for side in (near.left, near.right):
        sides.append([tokens.name for tokens in doc.fields if any(spans(leaf, tokens) for leaf in side)])
    if held:
        return ", ".join(name for name in sides[0] if name in sides[1])
    missing = [_operand(side) for side, found in zip((near.left, near.right), sides) if not found]
    if missing:
        return "absent: " + " and ".join(missing)
    if not set(sides[0]) & set(sides[1]):
        return "not in the same field"
    return f"more than {near.distance} words apart"


def _operand(leaves: tuple[Leaf, ...]) -> str:
    return " OR ".join(unparse(leaf) for leaf in leaves)


def render(clause: Clause, indent: str = "") -> list[str]:
    """The clause as an indented tree, one line per clause: `✓ "peace talks" (title)`."""
    note = f" ({clause.note})" if clause.note else ""
    lines = [f"{indent}{HELD if clause.held else FAILED} {clause.text}{note}"]
    for child in clause.children:
        lines += render(child, indent + "    ")
    return lines
