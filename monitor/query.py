"""Topic query language: text → syntax tree → compiled matcher, and back to text (pure)."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple, NoReturn

from monitor.errors import QuerySyntaxError
from monitor.words import Document as Document
from monitor.words import prepare as prepare
from monitor.words import tokenise

if TYPE_CHECKING:
    from monitor.matching import Matcher

FIELDS = ("title", "summary")
MAX_DEPTH = 50  # nested groups and field prefixes: deeper is no query, and would exhaust the stack

# The syntax tree. Nodes are plain data, compared by what they mean (not by where they
# stand in the query text); monitor.matching turns a tree into the functions that match.


@dataclass(frozen=True)
class Term:
    """One word. Reported as the query wrote it."""

    word: str                       # folded
    label: str
    exact: str | None = None        # case-kept form for `{...}`
    field: str | None = None        # "title" or "summary"; None: either
    column: int = dataclasses.field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Prefix:
    """Any word starting with `stem`. Reported as the item wrote the word."""

    stem: str                       # folded, without the `*`
    exact: str | None = None
    field: str | None = None
    column: int = dataclasses.field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Phrase:
    """Consecutive words; a word ending in `*` is a prefix. Reported as the query wrote
    it, or as the item wrote it when it holds a prefix."""

    words: tuple[str, ...]          # folded
    label: str
    exact: tuple[str, ...] | None = None
    field: str | None = None
    column: int = dataclasses.field(default=0, compare=False, repr=False)


Leaf = Term | Prefix | Phrase


@dataclass(frozen=True)
class And:
    """Every child; reports what each child reports."""

    children: tuple[Node, ...]
    column: int = dataclasses.field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Or:
    """Any child; reports what every present child reports."""

    children: tuple[Node, ...]
    column: int = dataclasses.field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Not:
    """The child is absent; reports nothing."""

    child: Node
    column: int = dataclasses.field(default=0, compare=False, repr=False)


@dataclass(frozen=True)
class Near:
    """Some alternative of `left` and some alternative of `right` in the same field,
    in either order, 1 <= distance <= `distance` apart. The distance is the difference
    between the positions of their nearest words: adjacent words are 1 apart, so NEAR/5
    allows up to four words between. Overlapping occurrences do not count. Reports only
    the alternatives that took part in such a pair."""

    left: tuple[Leaf, ...]
    right: tuple[Leaf, ...]
    distance: int
    column: int = dataclasses.field(default=0, compare=False, repr=False)


Node = Term | Prefix | Phrase | And | Or | Not | Near


@dataclass(frozen=True)
class Query:
    """A compiled query. `source` is the text it came from; `root` its syntax tree;
    str() gives its canonical text, which compiles to an equal tree."""

    source: str
    root: Node

    def match(self, doc: Document) -> list[str] | None:
        """None when the query does not match; otherwise the words and phrases (as written
        in the query, in query order, without duplicates) that made the match. Negated
        terms never appear; a prefix reports the item's words as written; labels that
        differ only in case count as duplicates. Never an empty list: compile_query
        refuses queries that could match without a positive term."""
        return self.matcher.match(doc)

    @cached_property
    def matcher(self) -> Matcher:
        """The tree compiled into matching functions, on first use."""
        from monitor.matching import compile_matcher  # it builds on the node types above

        return compile_matcher(self.root)

    def __str__(self) -> str:
        return unparse(self.root)


def compile_query(text: str) -> Query:
    """Parse once; raises QuerySyntaxError(query, column, message) when malformed."""
    root = _Parser(text, _lex(text)).parse()
    unanchored = _negative_only(root)
    if unanchored is not None:
        raise QuerySyntaxError(
            text, unanchored.column, "only negated terms here: it would match almost every item"
        )
    return Query(text, root)


def _negative_only(node: Node) -> Node | None:
    """The part of `node` that can match without any positive term, if there is one."""
    if isinstance(node, Not):
        return node
    if isinstance(node, And):
        return node if all(_negative_only(c) for c in node.children) else None
    if isinstance(node, Or):
        return next((n for c in node.children if (n := _negative_only(c))), None)
    return None


# --- lexing -------------------------------------------------------------------------

_QUOTES = '"\u201c\u201d'
_RUN_ENDS = frozenset("(){}" + _QUOTES)
_FIELD_PREFIX = re.compile(r"[^\W\d_]+:")
_NEAR = re.compile(r"NEAR/([0-9]+)")
_BINARY = ("AND", "OR", "NEAR")
_TERM_START = frozenset({"word", "phrase", "exact", "(", "field", "NOT", "-"})


class _Token(NamedTuple):
    kind: str    # "word" "phrase" "exact" "(" ")" "-" "field" "AND" "OR" "NOT" "NEAR" "end"
    text: str    # as written; for phrases and {exact} the text inside the delimiters
    column: int  # 1-based, of the first character (the opening quote or brace)


def _lex(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    while i < len(query):
        char = query[i]
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(_Token(char, char, i + 1))
            i += 1
        elif char == "}":
            raise QuerySyntaxError(query, i + 1, 'unexpected "}"')
        elif char in _QUOTES or char == "{":
            i = _lex_quoted(query, i, tokens)
        elif char == "-":
            i = _lex_minus(query, i, tokens)
        else:
            i = _lex_run(query, i, tokens)
    tokens.append(_Token("end", "", len(query) + 1))
    return tokens


def _lex_quoted(query: str, start: int, tokens: list[_Token]) -> int:
    braces = query[start] == "{"
    closers = "}" if braces else _QUOTES
    end = next((j for j in range(start + 1, len(query)) if query[j] in closers), None)
    if end is None:
        raise QuerySyntaxError(query, start + 1, 'unclosed "{"' if braces else "unterminated phrase")
    inner = query[start + 1 : end]
    if braces and "{" in inner:
        raise QuerySyntaxError(query, start + 2 + inner.index("{"), 'unexpected "{"')
    tokens.append(_Token("exact" if braces else "phrase", inner, start + 1))
    return end + 1


def _lex_minus(query: str, start: int, tokens: list[_Token]) -> int:
    after = query[start + 1 : start + 2]
    if not after or after.isspace() or after in ")}":
        raise QuerySyntaxError(query, start + 1, 'expected a term after "-"')
    tokens.append(_Token("-", "-", start + 1))
    return start + 1


def _lex_run(query: str, start: int, tokens: list[_Token]) -> int:
    """A bare run of characters: a field prefix, an operator or a word."""
    column = start + 1
    # The prefix is matched in place, not in a copy of the run: "title:title:..." would
    # otherwise copy the rest of the query once per prefix.
    prefix = _FIELD_PREFIX.match(query, start)
    if prefix:
        after = query[prefix.end() : prefix.end() + 1]
        attached = bool(after) and not after.isspace()
        if prefix.group()[:-1] in FIELDS:
            if not attached:
                raise QuerySyntaxError(query, column, f'expected a term after "{prefix.group()}"')
            tokens.append(_Token("field", prefix.group(), column))
            return prefix.end()
        if attached:
            raise QuerySyntaxError(
                query, column, f'unknown field "{prefix.group()}" (use title: or summary:)'
            )
    end = start
    while end < len(query) and not query[end].isspace() and query[end] not in _RUN_ENDS:
        end += 1
    run = query[start:end]
    if run in ("AND", "OR", "NOT"):
        tokens.append(_Token(run, run, column))
    elif run == "NEAR" or run.startswith("NEAR/"):
        near = _NEAR.fullmatch(run)
        if near is None:
            raise QuerySyntaxError(query, column, "NEAR needs a distance, like NEAR/5")
        if int(near.group(1)) == 0:
            raise QuerySyntaxError(query, column, "NEAR distance must be at least 1")
        tokens.append(_Token("NEAR", run, column))
    else:
        tokens.append(_Token("word", run, column))
    return end


# --- parsing ------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the tokens; `field` is the enclosing field restriction,
    pushed down into the leaves. Loosest first (NOT binds tightest):

        or      := and ("OR" and)*
        and     := near (["AND"] near)*          juxtaposition is AND
        near    := unary ["NEAR/n" unary]        no chains: a NEAR/2 b NEAR/2 c is refused
        unary   := ["NOT" | "-"] primary
        primary := ("title:" | "summary:") primary | "(" or ")" | word | "phrase" | {exact}
    """

    def __init__(self, query: str, tokens: list[_Token]):
        self.query = query
        self.tokens = tokens
        self.pos = 0
        self.depth = 0  # groups and field prefixes open around the current token

    def parse(self) -> Node:
        if self._peek().kind == "end":
            self._fail(1, "empty query")
        node = self._or(None)
        extra = self._peek()
        if extra.kind != "end":  # only a stray ")" can stop the descent early
            self._fail(extra.column, f'unexpected "{extra.text}"')
        return node

    def _or(self, field: str | None) -> Node:
        children = [self._and(field)]
        while self._peek().kind == "OR":
            self._advance()
            children.append(self._and(field))
        return _join(Or, children)

    def _and(self, field: str | None) -> Node:
        children = [self._near(field)]
        while self._peek().kind == "AND" or self._peek().kind in _TERM_START:
            if self._peek().kind == "AND":
                self._advance()
            children.append(self._near(field))
        return _join(And, children)

    def _near(self, field: str | None) -> Node:
        left = self._unary(field)
        if self._peek().kind != "NEAR":
            return left
        distance = int(self._advance().text.removeprefix("NEAR/"))
        right = self._unary(field)
        if self._peek().kind == "NEAR":
            self._fail(self._peek().column, "NEAR cannot be chained; join pairs with AND")
        return Near(self._operand(left), self._operand(right), distance, left.column)

    def _unary(self, field: str | None) -> Node:
        if self._peek().kind in ("NOT", "-"):
            op = self._advance()
            return Not(self._primary(field), op.column)
        return self._primary(field)

    def _primary(self, field: str | None) -> Node:
        before = self.tokens[self.pos - 1] if self.pos else None
        token = self._advance()
        if token.kind in ("field", "("):
            self.depth += 1
            if self.depth > MAX_DEPTH:
                self._fail(token.column, f"nested more than {MAX_DEPTH} deep")
            try:
                if token.kind == "(":
                    return self._group(token, field)
                name = token.text[:-1]
                if field not in (None, name):
                    self._fail(token.column, f'"{token.text}" inside "{field}:"')
                return self._primary(name)
            finally:
                self.depth -= 1
        if token.kind in ("word", "phrase", "exact"):
            return _leaf(self.query, token, field)
        self._missing_term(before, token)

    def _group(self, opener: _Token, field: str | None) -> Node:
        if self._peek().kind == ")":
            self._fail(opener.column, "empty parentheses")
        node = self._or(field)
        if self._peek().kind != ")":
            self._fail(opener.column, 'unclosed "("')
        self._advance()
        return node

    def _missing_term(self, before: _Token | None, found: _Token) -> NoReturn:
        if before is not None and before.kind in (*_BINARY, "NOT", "-", "field"):
            column = before.column if found.kind == "end" else found.column
            self._fail(column, f'expected a term after "{before.text}"')
        if found.kind in _BINARY:
            self._fail(found.column, f'expected a term before "{found.text}"')
        if found.kind == "end" and before is not None:  # only "(" can precede the end here
            self._fail(before.column, 'unclosed "("')
        self._fail(found.column, f'unexpected "{found.text}"')

    def _operand(self, node: Node) -> tuple[Leaf, ...]:
        """A NEAR operand as its alternatives; anything but leaves and OR is refused."""
        if isinstance(node, (Term, Prefix, Phrase)):
            return (node,)
        if isinstance(node, Or):
            return tuple(leaf for child in node.children for leaf in self._operand(child))
        if isinstance(node, Not):
            self._fail(node.column, "a NEAR operand cannot be negated; negate the whole NEAR")
        if isinstance(node, And):
            self._fail(node.column, "a NEAR operand cannot contain AND; use OR, or join NEARs with AND")
        self._fail(node.column, "NEAR cannot be nested; join pairs with AND")

    def _peek(self) -> _Token:
        return self.tokens[self.pos]

    def _advance(self) -> _Token:
        token = self.tokens[self.pos]
        if token.kind != "end":
            self.pos += 1
        return token

    def _fail(self, column: int, message: str) -> NoReturn:
        raise QuerySyntaxError(self.query, column, message)


def _join(kind: type[And] | type[Or], children: list[Node]) -> Node:
    """One child stands for itself; nested nodes of the same kind are flattened."""
    if len(children) == 1:
        return children[0]
    flat = tuple(g for c in children for g in (c.children if isinstance(c, kind) else (c,)))
    return kind(flat, children[0].column)


def _leaf(query: str, token: _Token, field: str | None) -> Leaf:
    """A word, "phrase" or {exact} token as a Term, Prefix or Phrase."""
    start = token.column if token.kind == "word" else token.column + 1
    words = _query_words(query, token.text, start)
    if not words:
        message = {
            "word": f'no letters or digits in "{token.text}"',
            "phrase": "empty phrase",
            "exact": "empty braces",
        }[token.kind]
        raise QuerySyntaxError(query, token.column, message)
    label = " ".join(token.text.split())
    folded = tuple(w.casefold() for w in words)
    exact = tuple(words) if token.kind == "exact" else None
    if len(words) > 1:
        return Phrase(folded, label, exact, field, token.column)
    cased = None if exact is None else exact[0]
    if folded[0].endswith("*"):
        return Prefix(folded[0][:-1], cased and cased[:-1], field, token.column)
    return Term(folded[0], label, cased, field, token.column)


def _query_words(query: str, text: str, start: int) -> list[str]:
    """Normalised words of a query term, case kept; a word ending in `*` is a prefix.
    `start` is the column of text[0], for errors."""
    words: list[str] = []
    for chunk in re.finditer(r"\S+", text):
        body = chunk.group()
        star = body.find("*")
        if star != -1 and star != len(body) - 1:
            raise QuerySyntaxError(query, start + chunk.start() + star, '"*" may only end a word')
        found = tokenise(body.removesuffix("*"))
        if star != -1:
            if not found:
                raise QuerySyntaxError(query, start + chunk.start() + star, '"*" must follow a word')
            found[-1] += "*"
        words += found
    return words


# --- printing -----------------------------------------------------------------------


def unparse(node: Node) -> str:
    """The canonical text of a tree: compiling it gives an equal tree. Operators upper
    case, NOT rather than -, a field prefix on each term, groups only where needed
    (and around an AND inside an OR, for the reader)."""
    if isinstance(node, (Term, Prefix, Phrase)):
        return _leaf_text(node)
    if isinstance(node, Not):
        return f"NOT {_primary_text(node.child)}"
    if isinstance(node, And):
        return " AND ".join(f"({unparse(c)})" if isinstance(c, (And, Or)) else unparse(c) for c in node.children)
    if isinstance(node, Or):
        return " OR ".join(f"({unparse(c)})" if isinstance(c, (And, Or)) else unparse(c) for c in node.children)
    if isinstance(node, Near):
        return f"{_operand_text(node.left)} NEAR/{node.distance} {_operand_text(node.right)}"
    raise TypeError(f"not a query node: {node!r}")


def _primary_text(node: Node) -> str:
    return unparse(node) if isinstance(node, (Term, Prefix, Phrase)) else f"({unparse(node)})"


def _operand_text(leaves: tuple[Leaf, ...]) -> str:
    text = " OR ".join(_leaf_text(leaf) for leaf in leaves)
    return text if len(leaves) == 1 else f"({text})"


def _leaf_text(leaf: Leaf) -> str:
    field = f"{leaf.field}:" if leaf.field else ""
    if isinstance(leaf, Prefix):
        stem = f"{leaf.stem}*" if leaf.exact is None else f"{{{leaf.exact}*}}"
        return field + stem
    if leaf.exact is not None:
        return f"{field}{{{leaf.label}}}"
    if isinstance(leaf, Term) and _bare(leaf.label):
        return field + leaf.label
    return f'{field}"{leaf.label}"'


def _bare(word: str) -> bool:
    """Whether `word` reads back, unquoted, as that one word."""
    try:
        tokens = _lex(word)
    except QuerySyntaxError:
        return False
    return len(tokens) == 2 and tokens[0].kind == "word" and tokens[0].text == word
