"""The meter filter language, parsed and compiled to one SQL condition on ``meters``.

Grammar (keywords case-insensitive, documented in docs/ums.md)::

    expr       := term ("or" term)*
    term       := factor ("and" factor)*
    factor     := "not" factor | "(" expr ")" | comparison
    comparison := field op value | field "in" "(" value ("," value)* ")"
    field      := serial | vendor | model | hw_rev | region | cell | group | last_contact
                | COMPONENT "." (version | staged | security_seq)
    op         := "=" | "!=" | "<" | "<=" | ">" | ">=" | "~"      (~ is a glob: * and ?)
    value      := WORD | "double-quoted string"

Versions compare as semver (``ami_comm.version<2.0`` matches 1.9.9 and 2.0.0-rc.1, not
2.0.0); a component condition matches meters that have that component and whose component
row satisfies it. ``group=NAME`` matches members of a static group or meters matching a
filter group (nested up to 4 deep). ``last_contact`` compares unix seconds; ``last_contact=none``
matches meters never heard from. The parser is a small recursive descent over a token list:
malformed input is an ``invalid-argument`` naming the position, never a SQL error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import ColumnElement, and_, exists, false, not_, or_, select, true
from sqlalchemy.orm import Session

from amiup.errors import error
from amiup.ums.models import COMPONENTS, Group, GroupMember, Meter, MeterComponent
from amiup.ums.versions import version_key

MAX_LENGTH = 4096
MAX_GROUP_DEPTH = 4
METER_FIELDS = ("serial", "vendor", "model", "hw_rev", "region", "cell")
COMPONENT_FIELDS = ("version", "staged", "security_seq")
OPS = ("=", "!=", "<", "<=", ">", ">=", "~")

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<op>!=|<=|>=|=|<|>|~)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z0-9_.:*?+/@-]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Tok:
    """A lexical token and its offset (for error messages)."""

    kind: str
    text: str
    pos: int


def tokenize(source: str) -> list[Tok]:
    """Split ``source`` into tokens; refuse anything the grammar cannot contain."""
    if len(source) > MAX_LENGTH:
        raise error("invalid-argument", f"filter longer than {MAX_LENGTH} characters")
    out: list[Tok] = []
    pos = 0
    src = source.rstrip()
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            raise error("invalid-argument", f"filter: unexpected character at {pos}: "
                                            f"{src[pos:pos + 10]!r}")
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "str":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        out.append(Tok(kind, text, m.start(kind)))
        pos = m.end()
    return out


@dataclass(frozen=True, slots=True)
class Cmp:
    """``field op value(s)`` after parsing."""

    field: str
    op: str  # one of OPS, or "in"
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``and`` / ``or`` of children, or ``not`` of one."""

    op: str
    children: tuple[Node, ...]


Node = Cmp | BoolOp


class _Parser:
    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self) -> Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> Tok:
        tok = self.peek()
        if tok is None:
            raise error("invalid-argument", "filter ends too early")
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str) -> None:
        tok = self.take()
        if tok.kind != kind or tok.text != text:
            raise error("invalid-argument", f"filter: expected {text!r} at {tok.pos}, "
                                            f"found {tok.text!r}")

    def expr(self) -> Node:
        nodes = [self.term()]
        while self.keyword("or"):
            nodes.append(self.term())
        return nodes[0] if len(nodes) == 1 else BoolOp("or", tuple(nodes))

    def term(self) -> Node:
        nodes = [self.factor()]
        while self.keyword("and"):
            nodes.append(self.factor())
        return nodes[0] if len(nodes) == 1 else BoolOp("and", tuple(nodes))

    def factor(self) -> Node:
        if self.keyword("not"):
            return BoolOp("not", (self.factor(),))
        tok = self.peek()
        if tok is not None and tok.kind == "punct" and tok.text == "(":
            self.take()
            node = self.expr()
            self.expect("punct", ")")
            return node
        return self.comparison()

    def value(self) -> str:
        tok = self.take()
        if tok.kind not in ("word", "str"):
            raise error("invalid-argument", f"filter: expected a value at {tok.pos}, "
                                            f"found {tok.text!r}")
        return tok.text

    def comparison(self) -> Cmp:
        tok = self.take()
        if tok.kind != "word":
            raise error("invalid-argument", f"filter: expected a field at {tok.pos}, "
                                            f"found {tok.text!r}")
        field = _check_field(tok)
        if self.keyword("in"):
            self.expect("punct", "(")
            values = [self.value()]
            while (t := self.peek()) is not None and t.kind == "punct" and t.text == ",":
                self.take()
                values.append(self.value())
            self.expect("punct", ")")
            return Cmp(field, "in", tuple(values))
        op = self.take()
        if op.kind != "op":
            raise error("invalid-argument", f"filter: expected an operator after {field!r} at "
                                            f"{op.pos}, found {op.text!r}")
        return Cmp(field, op.text, (self.value(),))


def _check_field(tok: Tok) -> str:
    name = tok.text.lower()
    if name in (*METER_FIELDS, "group", "last_contact"):
        return name
    comp, _, attr = name.partition(".")
    if comp in COMPONENTS and attr in COMPONENT_FIELDS:
        return name
    raise error("invalid-argument", f"filter: unknown field {tok.text!r} at {tok.pos}; fields: "
                f"{', '.join(METER_FIELDS)}, group, last_contact, COMPONENT.version|staged|"
                f"security_seq (components: {', '.join(COMPONENTS)})")


def parse(source: str) -> Node:
    """Parse a filter into a tree; ``invalid-argument`` with the position on any error."""
    toks = tokenize(source)
    if not toks:
        raise error("invalid-argument", "empty filter")
    p = _Parser(toks)
    node = p.expr()
    if p.peek() is not None:
        extra = p.take()
        raise error("invalid-argument", f"filter: unexpected {extra.text!r} at {extra.pos}")
    return node


def _glob(value: str) -> str:
    esc = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return esc.replace("*", "%").replace("?", "_")


def _compare(col: ColumnElement[object] | object, op: str, values: tuple[object, ...]) \
        -> ColumnElement[bool]:
    c: object = col
    if op == "in":
        return c.in_(values)  # type: ignore[attr-defined, no-any-return]
    v = values[0]
    if op == "~":
        return c.like(_glob(str(v)), escape="\\")  # type: ignore[attr-defined, no-any-return]
    table = {"=": "__eq__", "!=": "__ne__", "<": "__lt__", "<=": "__le__", ">": "__gt__",
             ">=": "__ge__"}
    return getattr(c, table[op])(v)  # type: ignore[no-any-return]


def _int(value: str, field: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise error("invalid-argument", f"filter: {field} needs a number, got {value!r}") from None


class Compiler:
    """Compiles a parsed filter to a condition on ``Meter``; needs a session for groups."""

    def __init__(self, session: Session | None, depth: int = 0) -> None:
        self.session = session
        self.depth = depth

    def compile(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, BoolOp):
            parts = [self.compile(c) for c in node.children]
            if node.op == "not":
                return not_(parts[0])
            return and_(*parts) if node.op == "and" else or_(*parts)
        return self.cmp(node)

    def cmp(self, c: Cmp) -> ColumnElement[bool]:
        if c.field in METER_FIELDS:
            if c.op in ("<", "<=", ">", ">="):
                raise error("invalid-argument", f"filter: {c.field} takes =, !=, ~ or in")
            return _compare(getattr(Meter, c.field), c.op, c.values)
        if c.field == "last_contact":
            if c.values == ("none",) and c.op in ("=", "!="):
                col = Meter.last_contact
                return col.is_(None) if c.op == "=" else col.is_not(None)
            if c.op == "~":
                raise error("invalid-argument", "filter: last_contact takes numbers")
            return _compare(Meter.last_contact, c.op,
                            tuple(float(_int(v, c.field)) for v in c.values))
        if c.field == "group":
            return self.group(c)
        comp, _, attr = c.field.partition(".")
        cond: ColumnElement[bool]
        if attr == "security_seq":
            if c.op == "~":
                raise error("invalid-argument", "filter: security_seq takes numbers")
            cond = _compare(MeterComponent.security_seq, c.op,
                            tuple(_int(v, c.field) for v in c.values))
        else:
            key_col, text_col = ((MeterComponent.running_key, MeterComponent.running_version)
                                 if attr == "version"
                                 else (MeterComponent.staged_key, MeterComponent.staged_version))
            if c.op == "~":
                cond = _compare(text_col, c.op, c.values)
            else:
                cond = _compare(key_col, c.op, tuple(version_key(v) for v in c.values))
        return exists().where(MeterComponent.meter_id == Meter.id,
                              MeterComponent.component == comp, cond)

    def group(self, c: Cmp) -> ColumnElement[bool]:
        if c.op not in ("=", "!=", "in"):
            raise error("invalid-argument", "filter: group takes =, != or in")
        if self.session is None:
            raise error("invalid-argument", "filter: group needs the store")
        conds: list[ColumnElement[bool]] = []
        for name in c.values:
            g = self.session.scalar(select(Group).where(Group.name == name))
            if g is None:
                raise error("not-found", f"filter: no group {name!r}")
            if g.kind == "filter":
                if self.depth >= MAX_GROUP_DEPTH:
                    raise error("invalid-argument", "filter: groups nested too deep")
                sub = Compiler(self.session, self.depth + 1)
                conds.append(sub.compile(parse(g.filter_expr or "")))
            else:
                conds.append(exists().where(GroupMember.group_id == g.id,
                                            GroupMember.meter_id == Meter.id))
        cond = or_(*conds) if conds else false()
        return not_(cond) if c.op == "!=" else cond


def _uses_groups(node: Node) -> bool:
    if isinstance(node, BoolOp):
        return any(_uses_groups(c) for c in node.children)
    return node.field == "group"


@lru_cache(maxsize=256)
def _parsed(source: str) -> tuple[Node, ColumnElement[bool] | None]:
    """The tree of ``source`` and, when it names no group, its condition (store-independent).

    Cached: dashboards and campaign previews repeat the same few filters, and parsing plus
    building the SQL expression costs more than running an indexed query. Conditions are
    immutable SQL expressions, safe to share between threads; a filter naming a group is
    compiled per call because the group's definition lives in the store and may change.
    """
    node = parse(source)
    return node, None if _uses_groups(node) else Compiler(None).compile(node)


def static_condition(source: str | None) -> ColumnElement[bool] | None:
    """The cached condition of a filter that needs no store (no ``group``), else None.

    The same filter text always yields the same condition object, so callers may cache
    statements built on it by the filter text.
    """
    if source is None or not source.strip():
        return _TRUE
    return _parsed(source)[1]


_TRUE: ColumnElement[bool] = true()


def compile_filter(source: str | None, session: Session | None = None) -> ColumnElement[bool]:
    """The SQL condition on ``Meter`` for ``source`` (an empty filter matches every meter)."""
    if source is None or not source.strip():
        return _TRUE
    node, cond = _parsed(source)
    return cond if cond is not None else Compiler(session).compile(node)
