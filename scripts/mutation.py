#!/usr/bin/env python3
"""A small, reproducible mutation run over an explicit list of operators.

    scripts/mutation.sh sentinel/policy.py            # one module, its own tests
    scripts/mutation.sh sentinel/policy.py --list     # the mutants only, no test run
    scripts/mutation.sh all                           # every module below, in turn
    scripts/mutation.sh sentinel/credentials/dcc.py --sample 40   # a seeded sample
    scripts/mutation.sh MODULE --again run.json       # only the survivors of an earlier run
    scripts/mutation.sh all --json run.json           # run.policy.json, run.dcc.json, ...

Why not mutmut or cosmic-ray: both mutate every operator and constant (thousands of mutants
for these modules) and, for mutmut 3, need the whole suite to run under its trampoline; on
a 2-core machine that is hours per module.  This script applies a fixed, documented set of
operators (the ones that turn a check off, widen a window by one, or fail open), runs only
the tests mapped to the module below, and so takes minutes per module.

Operators (each mutant is exactly one change):
  CMP   a comparison flipped at its boundary or negated: < <=, > >=, == !=, is / is not, in / not in
  BOOL  ``and`` <-> ``or``
  NOT   ``not x`` -> ``x``
  NUM   an integer constant n -> n + 1 (0 -> 1, 1 -> 2, ...), float f -> f * 2 (never in slices
        of a single index)
  TRUE  ``True`` <-> ``False``
  RAISE ``raise ...`` -> ``pass`` (a refusal or error dropped)
  GUARD ``if cond: <body>`` whose body ends in ``raise``/``return`` -> the whole ``if`` dropped
  CALL  a call statement (``os.fsync(fd)``, ``conn.execute(...)``, ``self._check(...)``) -> ``pass``
  SLICE ``x[:n]`` -> ``x[-n:]`` and ``x[n:]`` -> ``x[:n]`` (hash truncation, field offsets)
  ARITH ``a + b`` <-> ``a - b``

Second set, not run unless asked (``--operators``): kinds the tests were never tuned against,
to check that a score holds on mutants nobody wrote tests for:
  RETURN ``return <value>`` -> ``return None`` (a result dropped)
  MINMAX ``min(...)`` <-> ``max(...)``
  ANYALL ``any(...)`` <-> ``all(...)``
  AUG   ``x += y`` <-> ``x -= y`` (a counter or offset running the wrong way)
  NEG   ``-x`` -> ``x``

Third set (``--operators third``), written on 2026-12-03 and first run then, after every
test of the first two: handled errors and control flow.
  EXCEPT an ``except`` handler's body -> ``raise`` (a handled error escapes instead)
  LOOP  ``break`` <-> ``continue``
  IFEXP ``a if c else b`` -> ``b if c else a``
  WITH  ``with <manager>: <body>`` -> ``<body>`` for a manager that binds no name (a lock,
        a transaction, a suppress() dropped)

Fourth set (``--operators fourth``), written on 2026-12-03 after the third set's tests and
run once before any test for it: what a call is told and what input is cleaned.
  KWARG  one keyword argument of a call dropped (its default takes over: ``strict=True``,
         ``timeout=``, ``check_same_thread=False``, ``follow_redirects=True`` ...)
  ISINST ``isinstance(...)`` -> ``True`` (a type check of untrusted data passes anything)
  NORM   ``x.strip()`` / ``.lower()`` / ``.upper()`` / ``.casefold()`` ... -> ``x`` (input
         left uncleaned)
  ELSE   an ``if``'s ``else`` (or ``elif``) branch dropped

Fifth set (``--operators fifth``), written on 2026-12-03 after the fourth set's tests and
run once before any test for it: state, argument order, string values, ordering.
  SETATTR  ``obj.attr = value`` -> dropped (state not updated)
  SWAP     a call's first two positional arguments swapped
  STREQ    a string literal compared with ``==`` / ``!=`` / ``in`` -> ``"\x00"`` (a value
           that never matches)
  ORDER    ``sorted(x)`` -> ``list(x)``, ``reversed(x)`` -> ``x``

Sixth set (``--operators sixth``), written on 2026-12-03 (a new session) after the fifth
set's tests and run once before any test for it: arithmetic beyond + and -, defaults,
dropped values, declarations.
  BINOP    ``*`` <-> ``/``, ``//`` -> ``*``, ``%`` -> ``//``, ``**`` -> ``*``, ``&`` <-> ``|``,
           ``^`` -> ``|``, ``<<`` <-> ``>>`` (sizes, scales, bit masks)
  DEFAULT  a parameter's default constant changed (n -> n + 1, f -> 2f, True <-> False,
           a string -> "" or "x"): what a caller that passes nothing gets
  NONE     ``name = <value>`` -> ``name = None`` (a value lost)
  STARTS   ``x.startswith(p)`` <-> ``x.endswith(p)`` (a prefix check that looks elsewhere)

Seventh set (``--operators seventh``), written on 2026-12-04 (a new session) after the
sixth set's tests and run once before any test for it: tables and clean-up.
  DICT     one entry of a dict literal dropped (a mapping, a default, a header)
  ELEM     one element of a list, tuple or set literal of constants or names dropped (an
           allowed algorithm, an exception type caught, a package, a column)
  FILTER   a comprehension's ``if`` dropped (``[x for x in xs if ok(x)]`` keeps every x)
  FINALLY  a ``finally:`` body -> ``pass`` (a lock, a file or a temporary left behind)

Eighth set (``--operators eighth``), written on 2026-12-04 (a new session) after the
seventh set's tests and run once before any test for it: names and branches.
  KEY      a string key read from a mapping (``d["k"]``, ``d.get("k")``, ``.pop``,
           ``.setdefault``) -> ``"k_"`` (a field looked up under a name it does not have)
  KWSWAP   the values of two neighbouring keyword arguments of a call swapped
           (``dose_number=dn, series_doses=sd``: two settings of one kind confused)
  UNPACK   two neighbouring names of an unpacking swapped (``a, b = f()`` -> ``b, a = f()``)
  IFTEST   an ``if``'s test -> ``True`` (the branch always taken), and -> ``False`` where
           GUARD does not already drop it

Ninth set (``--operators ninth``), written on 2026-12-04 after the eighth set's tests and
run once before any test for it: conditions and names of outcomes.
  BOOLDROP one operand of an ``and`` / ``or`` dropped (a condition of a check forgotten)
  CMPFLIP  the two sides of an ordering comparison swapped (``a < b`` -> ``b < a``)
  ENUM     a member of an enum-style class (``ReasonCode.EXPIRED``: a capitalized name, an
           upper-case attribute) -> the next member the module reads (the wrong reason,
           state or kind)

``--operators every`` runs all nine sets at once.  Mutants are told apart by their whole
mutated source: two changes that give the same module are one mutant (the first in line
and operator order), and a change that gives back the original module is none.

``SWAP`` skips calls whose first two arguments commute (``min``, ``max``, ``np.minimum``,
``hmac.compare_digest`` ...): swapping them is equivalent by construction.

Each mutant is written over the module in place (the original is restored afterwards, also on
Ctrl-C), the module's byte-code cache is bypassed, and the mapped tests run with ``-x`` and a
timeout (3 x the unmutated run + 20 s).  A mutant is *killed* when the tests fail or time out.
Run it in a scratch clone or worktree: it refuses a module with uncommitted changes.

Output: one line per mutant, then ``mutation <module>: <killed>/<total> killed (<pct> %)``;
``--json FILE`` writes every mutant with its result.  Known equivalent mutants (no behaviour
change) are listed in ``scripts/mutation-equivalent.txt`` by ``module:line:operator:after``
and neither run nor scored.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Module -> the tests that exercise it (generous: every file that reaches the module's code).
TESTS: dict[str, list[str]] = {
    "sentinel/policy.py": [
        "tests/test_policy.py",
        "tests/test_policy_layers.py",
        "tests/test_policy_modes.py",
        "tests/test_iddoc_decisions.py",
    ],
    "sentinel/credentials/dcc.py": [
        "tests/test_dcc_chain.py",
        "tests/test_oracles.py",
        "tests/test_verifiers_refuse.py",
        "tests/test_dcc_signatures.py",
        "tests/test_dcc_mask.py",
        "tests/test_dcc_schema.py",
        "tests/test_conformance_dgc.py",
    ],
    "sentinel/credentials/cose.py": [
        "tests/test_cose.py",
        "tests/test_dcc_chain.py",
        "tests/test_oracles.py",
        "tests/test_verifiers_refuse.py",
        "tests/test_dcc_signatures.py",
        "tests/test_dcc_mask.py",
        "tests/test_dcc_schema.py",
        "tests/test_conformance_dgc.py",
    ],
    "sentinel/credentials/iddoc.py": [
        "tests/test_iddoc.py",
        "tests/test_iddoc_icao.py",
        "tests/test_edges.py",
        "tests/test_iddoc_decisions.py",
        "tests/test_oracles.py",
        "tests/test_security_input.py",
        "tests/test_scan_pipeline.py",
    ],
    "sentinel/credentials/certlogic.py": [
        "tests/test_certlogic.py",
        "tests/test_edges.py",
        "tests/test_oracles.py",
    ],
    "sentinel/credentials/rules.py": [
        "tests/test_rules_part.py",
        "tests/test_certlogic.py",  # the rules' clock under a UTC offset (rules.py:203)
        "tests/test_policy_layers.py",
        "tests/test_policy_modes.py",
        "tests/test_valuesets.py",
        "tests/test_verifiers_refuse.py",
    ],
    "sentinel/credentials/healthcode.py": [
        "tests/test_healthcode_vector.py",
        "tests/test_healthcode.py",
        "tests/test_edges.py",
        "tests/test_healthcode_pipeline.py",
    ],
    "sentinel/trust/bundle.py": [
        "tests/test_manifest_edges.py",
        "tests/test_bundle.py",
        "tests/test_trust_envelope.py",
        "tests/test_trust_private.py",
        "tests/test_trust_store.py",
        "tests/test_trust_upgrade.py",  # is_older_format: which bundle formats read older
    ],
    "sentinel/trust/store.py": [
        "tests/test_trust_store.py",
        "tests/test_trust_locks.py",
        "tests/test_bundle.py",
        "tests/test_sync_http.py",
        "tests/test_sync_expired.py",
        "tests/test_trust_snapshot.py",
        "tests/test_trust_envelope.py",
        "tests/test_trust_private.py",
        "tests/test_security_sync.py",
        "tests/test_trust_upgrade.py",
        # not tests/test_audit_gaps.py: of its five tests (3 of them CLI subprocesses, a
        # third of this list's time) one reaches the store, through the crash between
        # the commit and the audit entry that test_sync_http.py now kills in-process
    ],
    "sentinel/trust/sync.py": [
        "tests/test_sync_http.py",
        "tests/test_progress.py",  # the download's bar
        "tests/test_trust_locks.py",
        "tests/test_sync_expired.py",
        "tests/test_security_sync.py",
        "tests/test_audit_gaps.py",
    ],
    "sentinel/trust/statusset.py": [
        "tests/test_statusset_edges.py",
        "tests/test_bundle.py",
        "tests/test_trust_store.py",
        "tests/test_trust_private.py",
    ],
    "sentinel/journal/purge.py": [
        "tests/test_purge.py",
        "tests/test_progress.py",  # the deletes' bar
        "tests/test_retention_kill.py",
        "tests/test_retention_service.py",
        "tests/test_diskfull.py",
        "tests/test_journal_errors.py",
        "tests/test_journal_locks.py",
    ],
    "sentinel/journal/audit.py": [
        "tests/test_audit.py",
        "tests/test_oracles.py",
        "tests/test_audit_gaps.py",
        "tests/test_purge.py",
        "tests/test_journal_errors.py",
        "tests/test_journal_locks.py",
    ],
    "sentinel/journal/keystore.py": [
        "tests/test_keystore.py",
        "tests/test_journal.py",
        "tests/test_purge.py",
        "tests/test_audit_gaps.py",
        "tests/test_journal_errors.py",
        "tests/test_journal_locks.py",
    ],
    "sentinel/web/auth.py": [
        "tests/test_web_sessions.py",
        "tests/test_web_app.py",
        "tests/test_security_web.py",
        "tests/test_central_web.py",
    ],
    "sentinel/gate/door.py": [
        "tests/test_door_machine.py",
        "tests/test_gate_door.py",
        "tests/test_edges.py",
    ],
}

_CMP_SWAP: dict[type, type] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}


@dataclass
class Mutant:
    ident: str
    line: int
    operator: str
    before: str
    after: str
    result: str = ""
    seconds: float = 0.0


def _src(node: ast.AST) -> str:
    return ast.unparse(node).replace("\n", " ")


def _window(before: str, after: str, width: int = 90) -> tuple[str, str]:
    """The two texts of a change cut to ``width`` characters around where they first
    differ (a change past the first 90 characters of a long statement stays visible)."""
    if len(before) <= width and len(after) <= width:
        return before, after
    i = 0
    while i < min(len(before), len(after)) and before[i] == after[i]:
        i += 1
    start = max(0, i - 30)

    def cut(text: str) -> str:
        part = text[start : start + width - 6]
        head = "..." if start else ""
        return head + part + ("..." if start + width - 6 < len(text) else "")

    return cut(before), cut(after)


def _docstring_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        doc = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
        if doc and isinstance(first.value.value, str):  # type: ignore[union-attr]
            lines.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))  # type: ignore[union-attr]
    return lines


def _ends_in_exit(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Raise | ast.Return | ast.Continue)


def _decorator_nodes(tree: ast.Module) -> set[int]:
    """Nodes inside decorators (``@dataclass(frozen=True)``): declarations, not behaviour."""
    out: set[int] = set()
    for node in ast.walk(tree):
        for dec in getattr(node, "decorator_list", []):
            out.update(id(n) for n in ast.walk(dec))
    return out


def _annotation_nodes(tree: ast.Module) -> set[int]:
    """Nodes inside annotations (``datetime | None``): not evaluated at run time here."""
    out: set[int] = set()
    for node in ast.walk(tree):
        for ann in (getattr(node, "annotation", None), getattr(node, "returns", None)):
            if isinstance(ann, ast.AST):
                out.update(id(n) for n in ast.walk(ann))
    return out


def _sites(tree: ast.Module) -> Iterator[tuple[str, ast.AST, str]]:
    """Every (operator, node, variant) the operators apply to, in source order."""
    skip = _docstring_lines(tree)
    in_decorator = _decorator_nodes(tree)
    members = _enum_members(tree)
    typing = _annotation_nodes(tree)
    for sub in ast.walk(tree):  # ``a[i, j]``: an index, not a table (``_table``)
        if isinstance(sub, ast.Subscript):
            sub.slice._index = True  # type: ignore[attr-defined]
    for node in ast.walk(tree):
        if id(node) in in_decorator:
            continue
        line = getattr(node, "lineno", 0)
        if line in skip:
            continue
        if isinstance(node, ast.Compare):
            for i, op in enumerate(node.ops):
                if type(op) in _CMP_SWAP:
                    yield "CMP", node, str(i)
        elif isinstance(node, ast.BoolOp):
            yield "BOOL", node, ""
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield "NOT", node, ""
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool):
                yield "TRUE", node, ""
            elif isinstance(node.value, int | float) and not isinstance(node.value, bool):
                yield "NUM", node, ""
        elif isinstance(node, ast.Raise):
            yield "RAISE", node, ""
        elif isinstance(node, ast.If) and _ends_in_exit(node.body) and not node.orelse:
            yield "GUARD", node, ""
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call | ast.Await):
            yield "CALL", node, ""
        elif isinstance(node, ast.Slice) and node.step is None:
            if node.lower is None and node.upper is not None:
                yield "SLICE", node, "head"
            elif node.upper is None and node.lower is not None:
                yield "SLICE", node, "tail"
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub):
            yield "ARITH", node, ""
        # the second set (``--operators``)
        if isinstance(node, ast.Return) and node.value is not None:
            v = node.value
            if not (isinstance(v, ast.Constant) and v.value is None):
                yield "RETURN", node, ""
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("min", "max"):
                yield "MINMAX", node, ""
            elif node.func.id in ("any", "all"):
                yield "ANYALL", node, ""
        elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Add | ast.Sub):
            yield "AUG", node, ""
        elif (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and not isinstance(node.operand, ast.Constant)
        ):
            yield "NEG", node, ""
        # the third set
        if isinstance(node, ast.ExceptHandler):
            bare = [type(b) for b in node.body] == [ast.Raise] and node.body[0].exc is None
            if not bare:  # a handler that only re-raises is its own mutant
                yield "EXCEPT", node, ""
        elif isinstance(node, ast.Break | ast.Continue):
            yield "LOOP", node, ""
        elif isinstance(node, ast.IfExp):
            yield "IFEXP", node, ""
        elif isinstance(node, ast.With) and all(it.optional_vars is None for it in node.items):
            yield "WITH", node, ""
        # the fourth set
        if isinstance(node, ast.Call):
            for i, kw in enumerate(node.keywords):
                if kw.arg is not None:  # not **kwargs
                    yield "KWARG", node, str(i)
            if isinstance(node.func, ast.Name) and node.func.id == "isinstance":
                yield "ISINST", node, ""
            elif isinstance(node.func, ast.Attribute) and node.func.attr in _NORM:
                yield "NORM", node, ""
        elif isinstance(node, ast.If) and node.orelse:
            yield "ELSE", node, ""
        # the fifth set
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) for t in node.targets):
            yield "SETATTR", node, ""
        elif isinstance(node, ast.Call):
            plain = not any(isinstance(a, ast.Starred) for a in node.args[:2])
            if len(node.args) >= 2 and plain and _call_name(node) not in _SYMMETRIC:
                yield "SWAP", node, ""
            named = isinstance(node.func, ast.Name) and node.func.id in ("sorted", "reversed")
            if named and len(node.args) == 1:
                yield "ORDER", node, ""
        elif isinstance(node, ast.Compare):
            eq = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)
            if any(isinstance(op, eq) for op in node.ops):
                for i, c in enumerate([node.left, *node.comparators]):
                    if isinstance(c, ast.Constant) and isinstance(c.value, str):
                        yield "STREQ", node, str(i)
        # the sixth set
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOP and id(node) not in typing:
            yield "BINOP", node, ""
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for seq, i, arg in _defaults(node.args):
                if _default_variant(seq[i]) is not None:
                    yield "DEFAULT", node, arg.arg
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            v = node.value
            if isinstance(node.targets[0], ast.Name) and not (
                isinstance(v, ast.Constant) and v.value is None
            ):
                yield "NONE", node, ""
        method = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        if method and node.func.attr in ("startswith", "endswith"):  # type: ignore[attr-defined]
            yield "STARTS", node, ""
        # the seventh set
        if id(node) in typing:
            continue
        if isinstance(node, ast.Dict):
            for i, key in enumerate(node.keys):
                if key is not None:  # not **spread
                    yield "DICT", node, str(i)
        elif _table(node):
            for i in range(len(node.elts)):  # type: ignore[attr-defined]
                yield "ELEM", node, str(i)
        elif isinstance(node, ast.comprehension):
            for i in range(len(node.ifs)):
                yield "FILTER", node, str(i)
        elif isinstance(node, ast.Try | ast.TryStar) and node.finalbody:
            yield "FINALLY", node, ""
        # the eighth set
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                yield "KEY", node, ""
        elif isinstance(node, ast.Call) and _call_name(node) in ("get", "pop", "setdefault"):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield "KEY", node, ""
        if isinstance(node, ast.Call):
            named = [kw for kw in node.keywords if kw.arg is not None]
            for i in range(len(named) - 1):
                yield "KWSWAP", node, str(i)
        elif isinstance(node, ast.Assign | ast.For):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if isinstance(target, ast.Tuple | ast.List) and len(target.elts) >= 2:
                for i in range(len(target.elts) - 1):
                    yield "UNPACK", node, str(i)
        elif isinstance(node, ast.If) and not _fixed_if(node.test):
            yield "IFTEST", node, "true"
            if node.orelse or not _ends_in_exit(node.body):  # else GUARD's own mutant
                yield "IFTEST", node, "false"
        # the ninth set
        if isinstance(node, ast.BoolOp):
            for i in range(len(node.values)):
                yield "BOOLDROP", node, str(i)
        elif isinstance(node, ast.Compare) and len(node.ops) == 1:
            if isinstance(node.ops[0], ast.Lt | ast.LtE | ast.Gt | ast.GtE):
                yield "CMPFLIP", node, ""
        elif _member(node) and len(members.get(_member(node)[0], ())) >= 2:  # type: ignore[index]
            yield "ENUM", node, ""


def _enum_members(tree: ast.Module) -> dict[str, list[str]]:
    """Each enum-style class the module reads (``ReasonCode``) -> its members read, sorted."""
    members: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        m = _member(node)
        if m is not None:
            members.setdefault(m[0], set()).add(m[1])
    return {name: sorted(read) for name, read in members.items()}


def _member(node: ast.AST) -> tuple[str, str] | None:
    """(class, member) of a read of an enum-style member: ``ReasonCode.EXPIRED``, a
    capitalized name and an upper-case attribute."""
    if not (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)):
        return None
    if not isinstance(node.value, ast.Name) or not node.value.id[:1].isupper():
        return None
    attr = node.attr
    return (node.value.id, attr) if attr.isupper() and attr[:1].isalpha() else None


def _fixed_if(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` and ``if __name__ == "__main__":``: not behaviour at run time."""
    if isinstance(test, ast.Name | ast.Attribute):
        return _src(test).endswith("TYPE_CHECKING")
    return _src(test) in ("__name__ == '__main__'", '__name__ == "__main__"')


def _table(node: ast.AST) -> bool:
    """A list, tuple or set literal of two or more constants or names, read (not a target
    and not a subscript's index)."""
    if not isinstance(node, ast.List | ast.Tuple | ast.Set) or len(node.elts) < 2:
        return False
    if isinstance(getattr(node, "ctx", None), ast.Store | ast.Del):
        return False
    plain = (ast.Constant, ast.Name, ast.Attribute)
    return all(isinstance(e, plain) for e in node.elts) and not getattr(node, "_index", False)


def _line(node: ast.AST) -> int:
    """A node's line (a comprehension has none of its own: its target's)."""
    return getattr(node, "lineno", 0) or getattr(getattr(node, "target", None), "lineno", 0)


def _call_name(node: ast.Call) -> str:
    f = node.func
    return f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""


def _defaults(a: ast.arguments) -> list[tuple[list, int, ast.arg]]:
    """Each parameter that has a default: (the list holding it, its index, the parameter)."""
    pos = a.posonlyargs + a.args
    tail = pos[len(pos) - len(a.defaults) :]
    out: list[tuple[list, int, ast.arg]] = [(a.defaults, i, arg) for i, arg in enumerate(tail)]
    return out + [(a.kw_defaults, i, arg) for i, arg in enumerate(a.kwonlyargs)]


def _default_variant(node: ast.expr | None) -> ast.Constant | None:
    """The changed default of a parameter (None: not a constant this set changes)."""
    if not isinstance(node, ast.Constant) or node.value is None:
        return None
    v = node.value
    if isinstance(v, bool):
        return ast.Constant(not v)
    if isinstance(v, int):
        return ast.Constant(v + 1)
    if isinstance(v, float):
        return ast.Constant(v * 2 if v else 1.0)
    if isinstance(v, str):
        return ast.Constant("" if v else "x")
    return None


class _Apply(ast.NodeTransformer):
    """Apply one mutation to the node at ``target`` (its index in ``ast.walk`` order)."""

    def __init__(
        self, target: ast.AST, operator: str, variant: str, members: dict[str, list[str]]
    ) -> None:
        self.target, self.operator, self.variant = target, operator, variant
        self.before = self.after = ""
        self.members = members  # ENUM: each enum's members the module reads

    def generic_visit(self, node: ast.AST) -> ast.AST:
        node = super().generic_visit(node)
        if getattr(node, "_mutation_target", False):
            self.before = _src(node)
            self.label: tuple[str, str] | None = None
            new = self._mutate(node)
            self.after = "(deleted)" if isinstance(new, ast.Pass) else _src(new)
            if self.label is not None:  # a signature's change: the parameter, not the def
                self.before, self.after = self.label
            return new
        return node

    def _mutate(self, node: ast.AST) -> ast.AST:
        op = self.operator
        if op == "CMP":
            assert isinstance(node, ast.Compare)
            i = int(self.variant)
            node.ops[i] = _CMP_SWAP[type(node.ops[i])]()
            return node
        if op == "BOOL":
            assert isinstance(node, ast.BoolOp)
            node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            return node
        if op in ("NOT", "NEG"):  # `not x` -> `x`, `-x` -> `x`
            assert isinstance(node, ast.UnaryOp)
            return node.operand
        if op == "TRUE":
            assert isinstance(node, ast.Constant)
            return ast.Constant(not node.value)
        if op == "NUM":
            assert isinstance(node, ast.Constant)
            v = node.value
            return ast.Constant(v + 1 if isinstance(v, int) else (v * 2 if v else 1.0))
        if op in ("RAISE", "GUARD", "CALL"):
            return ast.Pass()
        if op == "SLICE":
            assert isinstance(node, ast.Slice)
            if self.variant == "head":  # x[:n] -> x[-n:]
                return ast.Slice(lower=ast.UnaryOp(ast.USub(), node.upper), upper=None)
            return ast.Slice(lower=None, upper=node.lower)  # x[n:] -> x[:n]
        if op in ("ARITH", "AUG"):  # a + b <-> a - b, x += y <-> x -= y
            assert isinstance(node, ast.BinOp | ast.AugAssign)
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            return node
        if op == "RETURN":
            assert isinstance(node, ast.Return)
            return ast.Return(value=ast.Constant(None))
        if op in ("MINMAX", "ANYALL"):
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            swap = {"min": "max", "max": "min", "any": "all", "all": "any"}
            node.func = ast.Name(id=swap[node.func.id], ctx=ast.Load())
            return node
        if op == "EXCEPT":
            assert isinstance(node, ast.ExceptHandler)
            node.body = [ast.Raise(exc=None, cause=None)]
            return node
        if op == "LOOP":
            return ast.Continue() if isinstance(node, ast.Break) else ast.Break()
        if op == "IFEXP":
            assert isinstance(node, ast.IfExp)
            node.body, node.orelse = node.orelse, node.body
            return node
        if op == "WITH":
            assert isinstance(node, ast.With)
            return ast.If(test=ast.Constant(True), body=node.body, orelse=[])
        if op == "KWARG":
            assert isinstance(node, ast.Call)
            del node.keywords[int(self.variant)]
            return node
        if op == "ISINST":
            return ast.Constant(True)
        if op == "NORM":
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            return node.func.value
        if op == "ELSE":
            assert isinstance(node, ast.If)
            node.orelse = []
            return node
        if op == "SETATTR":
            return ast.Pass()
        if op == "SWAP":
            assert isinstance(node, ast.Call)
            node.args[0], node.args[1] = node.args[1], node.args[0]
            return node
        if op == "ORDER":
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            if node.func.id == "sorted":
                node.func = ast.Name(id="list", ctx=ast.Load())
                node.keywords = []
                return node
            return node.args[0]
        if op == "BINOP":
            assert isinstance(node, ast.BinOp)
            node.op = _BINOP[type(node.op)]()
            return node
        if op == "DEFAULT":
            assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            for seq, i, arg in _defaults(node.args):
                if arg.arg == self.variant:
                    old, new = seq[i], _default_variant(seq[i])
                    assert old is not None and new is not None
                    self.label = (f"{arg.arg}={_src(old)}", f"{arg.arg}={_src(new)}")
                    seq[i] = new  # type: ignore[index]
            return node
        if op == "NONE":
            assert isinstance(node, ast.Assign)
            node.value = ast.Constant(None)
            return node
        if op == "STARTS":
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            node.func.attr = "endswith" if node.func.attr == "startswith" else "startswith"
            return node
        if op == "DICT":
            assert isinstance(node, ast.Dict)
            i = int(self.variant)
            del node.keys[i], node.values[i]
            return node
        if op == "ELEM":
            assert isinstance(node, ast.List | ast.Tuple | ast.Set)
            del node.elts[int(self.variant)]
            return node
        if op == "FILTER":
            assert isinstance(node, ast.comprehension)
            del node.ifs[int(self.variant)]
            return node
        if op == "FINALLY":
            assert isinstance(node, ast.Try | ast.TryStar)
            node.finalbody = [ast.Pass()]
            return node
        if op == "KEY":  # a key that is not the one meant
            if isinstance(node, ast.Subscript):
                assert isinstance(node.slice, ast.Constant)
                node.slice = ast.Constant(node.slice.value + "_")
            else:
                assert isinstance(node, ast.Call) and isinstance(node.args[0], ast.Constant)
                node.args[0] = ast.Constant(node.args[0].value + "_")
            return node
        if op == "KWSWAP":
            assert isinstance(node, ast.Call)
            named = [kw for kw in node.keywords if kw.arg is not None]
            a, b = named[int(self.variant)], named[int(self.variant) + 1]
            a.value, b.value = b.value, a.value
            return node
        if op == "UNPACK":
            assert isinstance(node, ast.Assign | ast.For)
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            assert isinstance(target, ast.Tuple | ast.List)
            i = int(self.variant)
            target.elts[i], target.elts[i + 1] = target.elts[i + 1], target.elts[i]
            return node
        if op == "IFTEST":
            assert isinstance(node, ast.If)
            node.test = ast.Constant(self.variant == "true")
            return node
        if op == "BOOLDROP":  # one operand of an and/or gone
            assert isinstance(node, ast.BoolOp)
            rest = [v for i, v in enumerate(node.values) if i != int(self.variant)]
            return rest[0] if len(rest) == 1 else ast.BoolOp(op=node.op, values=rest)
        if op == "CMPFLIP":  # a < b -> b < a
            assert isinstance(node, ast.Compare)
            node.left, node.comparators[0] = node.comparators[0], node.left
            return node
        if op == "ENUM":  # another member of the same enum, the next one the module reads
            assert isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            names = self.members[node.value.id]
            node.attr = names[(names.index(node.attr) + 1) % len(names)]
            return node
        if op == "STREQ":
            assert isinstance(node, ast.Compare)
            i = int(self.variant)
            if i == 0:
                node.left = ast.Constant("\x00")
            else:
                node.comparators[i - 1] = ast.Constant("\x00")
            return node
        raise ValueError(op)


FIRST_SET = ("CMP", "BOOL", "NOT", "NUM", "TRUE", "RAISE", "GUARD", "CALL", "SLICE", "ARITH")
SECOND_SET = ("RETURN", "MINMAX", "ANYALL", "AUG", "NEG")
THIRD_SET = ("EXCEPT", "LOOP", "IFEXP", "WITH")
FOURTH_SET = ("KWARG", "ISINST", "NORM", "ELSE")
FIFTH_SET = ("SETATTR", "SWAP", "STREQ", "ORDER")
SIXTH_SET = ("BINOP", "DEFAULT", "NONE", "STARTS")
SEVENTH_SET = ("DICT", "ELEM", "FILTER", "FINALLY")
EIGHTH_SET = ("KEY", "KWSWAP", "UNPACK", "IFTEST")
NINTH_SET = ("BOOLDROP", "CMPFLIP", "ENUM")
EVERY_SET = (
    FIRST_SET
    + SECOND_SET
    + THIRD_SET
    + FOURTH_SET
    + FIFTH_SET
    + SIXTH_SET
    + SEVENTH_SET
    + EIGHTH_SET
    + NINTH_SET
)
_BINOP: dict[type, type] = {
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.Pow: ast.Mult,
    ast.BitAnd: ast.BitOr,
    ast.BitOr: ast.BitAnd,
    ast.BitXor: ast.BitOr,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
}
# calls whose first two arguments commute: SWAP leaves them alone
_SYMMETRIC = frozenset({"min", "max", "minimum", "maximum", "compare_digest", "isclose", "gcd"})
_NORM = {"strip", "lstrip", "rstrip", "lower", "upper", "casefold"}


def mutants(
    path: Path, operators: tuple[str, ...] = FIRST_SET, lines: set[int] | None = None
) -> list[tuple[Mutant, str]]:
    """Every mutant of ``path`` by ``operators`` with its full mutated source (only those
    on ``lines`` when given: their idents and numbering are then those of the whole run)."""
    source = path.read_text()
    tree = ast.parse(source)
    sites = sorted(
        (site for site in _sites(tree) if site[0] in operators),
        key=lambda s: (_line(s[1]), s[0]),
    )
    out: list[tuple[Mutant, str]] = []
    # mutants are told apart by their whole mutated source: two changes that give the same
    # module are one mutant, and a change that gives the original module is none
    seen: set[str] = {ast.unparse(tree)}
    shown: dict[str, int] = {}
    # the same node in a copy: walk order is deterministic
    position = {id(n): i for i, n in enumerate(ast.walk(tree))}
    members = _enum_members(tree)
    for k, (operator, node, variant) in enumerate(sites):
        if lines is not None and _line(node) not in lines:
            continue
        clone = copy.deepcopy(tree)
        target = list(ast.walk(clone))[position[id(node)]]
        target._mutation_target = True  # type: ignore[attr-defined]
        tool = _Apply(target, operator, variant, members)
        mutated = tool.visit(clone)
        ast.fix_missing_locations(mutated)
        try:
            text = ast.unparse(mutated)
            compile(text, str(path), "exec")
        except (SyntaxError, ValueError):
            continue
        if text in seen:
            continue
        seen.add(text)
        line = _line(node)
        ident = f"{operator}{k:03d}"
        before, after = _window(tool.before, tool.after)
        key = f"{line}:{operator}:{after}"
        shown[key] = shown.get(key, 0) + 1
        if shown[key] > 1:  # the same shown change elsewhere on the line: numbered
            after = f"{after} [{shown[key]}]"
        out.append((Mutant(ident, line, operator, before, after), text))
    return out


def stale_equivalents(path: Path, keys: set[str]) -> list[str]:
    """The ``line:operator:after`` keys of ``path`` that match no mutant, each checked
    against its own operator alone (with several, a mutant equal to an earlier operator's
    is dropped, and its entry would look stale)."""
    lines = {int(k.split(":", 1)[0]) for k in keys}
    have = {
        f"{m.line}:{m.operator}:{m.after}"
        for op in {k.split(":", 2)[1] for k in keys}
        for m, _ in mutants(path, (op,), lines)
    }
    return sorted(keys - have)


def _equivalent(module: str) -> set[str]:
    f = ROOT / "scripts" / "mutation-equivalent.txt"
    if not f.exists():
        return set()
    keys = set()
    for raw in f.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith(module + ":"):
            keys.add(line[len(module) + 1 :].strip())
    return keys


def _run_tests(tests: list[str], timeout_s: float) -> tuple[str, float]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return "killed (timeout)", time.monotonic() - start
    took = time.monotonic() - start
    if proc.returncode == 0:
        return "survived", took
    if proc.returncode in (1, 3):  # tests failed / internal error from the mutant
        return "killed", took
    return f"killed (exit {proc.returncode})", took


def _key(m: dict) -> tuple[str, str, str]:
    return (m["operator"], m["before"], m["after"])


def _counterpart(m: dict, candidates: list[dict]) -> dict | None:
    """The mutant of ``candidates`` that is ``m`` again: the same change (operator, text
    before and after) on the nearest line (lines move when code or tests around change)."""
    same = [c for c in candidates if _key(c) == _key(m)]
    return min(same, key=lambda c: abs(c["line"] - m["line"])) if same else None


def _score_again(earlier: list[dict], rerun: list[dict]) -> tuple[int, int]:
    """(killed, scored) of an earlier run after its survivors ran again: a survivor whose
    change no longer exists is dropped (the code changed), one judged equivalent is not
    scored, one that still survives stays a survivor."""
    killed = scored = 0
    for m in earlier:
        if m["result"] == "equivalent":
            continue
        if m["result"] != "survived":
            killed, scored = killed + 1, scored + 1
            continue
        now = _counterpart(m, rerun)
        if now is None or now["result"] == "equivalent":
            continue  # gone with the code, or judged equivalent since
        scored += 1
        killed += now["result"].startswith("killed")
    return killed, scored


def _drop_pyc(path: Path) -> None:
    cache = path.parent / "__pycache__"
    for f in cache.glob(path.stem + ".*.pyc"):
        f.unlink(missing_ok=True)


def run_module(
    module: str,
    *,
    only_list: bool,
    json_out: Path | None,
    sample: int = 0,
    seed: int = 1,
    again: Path | None = None,
    operators: tuple[str, ...] = FIRST_SET,
) -> tuple[int, int]:
    path = ROOT / module
    tests = [t for t in TESTS.get(module, []) if (ROOT / t).exists()]
    if not tests:
        raise SystemExit(f"mutation: no tests mapped to {module} (edit TESTS in {__file__})")
    found = mutants(path, operators)
    if sample and sample < len(found):  # a seeded sample: the same mutants on every run
        import random

        picked = sorted(random.Random(f"{seed}:{module}").sample(range(len(found)), sample))
        found = [found[i] for i in picked]
    earlier_run: list[dict] = []
    if again is not None:  # re-run only the survivors of an earlier run (same text of change)
        earlier_run = json.loads(again.read_text())
        pool = [{**asdict(m), "k": k} for k, (m, _) in enumerate(found)]
        wanted = set()
        for m in earlier_run:
            twin = _counterpart(m, pool) if m["result"] == "survived" else None
            if twin is not None:
                wanted.add(twin["k"])
        found = [f for k, f in enumerate(found) if k in wanted]
    equivalent = _equivalent(module)
    mine = {e for e in equivalent if e.split(":", 2)[1] in operators}
    for stale in stale_equivalents(path, mine):  # its line moved: the entry no longer applies
        print(f"mutation: {module}:{stale} in mutation-equivalent.txt matches no mutant")
    if only_list:
        for m, _ in found:
            print(f"{m.ident} {module}:{m.line} {m.operator} {m.before!r} -> {m.after!r}")
        return 0, len(found)
    dirty = subprocess.run(
        ["git", "diff", "--quiet", "--", module], cwd=ROOT, check=False
    ).returncode
    if dirty:
        raise SystemExit(f"mutation: {module} has uncommitted changes; commit or stash first")
    original = path.read_bytes()
    status, base_s = _run_tests(tests, timeout_s=1800)
    if status != "survived":
        raise SystemExit(f"mutation: the tests of {module} fail before any mutation")
    timeout_s = 3 * base_s + 20
    print(f"mutation {module}: {len(found)} mutants, tests {' '.join(tests)} ({base_s:.1f} s)")
    results: list[Mutant] = []
    killed = scored = 0

    def restore(*_: object) -> None:
        path.write_bytes(original)
        _drop_pyc(path)

    previous = signal.signal(signal.SIGTERM, lambda *a: (restore(), sys.exit(143)))
    try:
        for m, text in found:
            key = f"{m.line}:{m.operator}:{m.after}"
            if key in equivalent:  # listed with its reason: not scored, so not run
                m.result = "equivalent"
            else:
                path.write_text(text)
                _drop_pyc(path)
                m.result, m.seconds = _run_tests(tests, timeout_s)
                restore()
                scored += 1
                killed += m.result.startswith("killed")
            results.append(m)
            mark = {"survived": "SURVIVED"}.get(m.result, m.result)
            print(
                f"  {m.ident} l.{m.line} {m.operator}: {m.before} -> {m.after}  [{mark}]",
                flush=True,
            )
    finally:
        restore()
        signal.signal(signal.SIGTERM, previous)
    if earlier_run:  # the earlier run's kills count; each of its survivors is judged again
        killed, scored = _score_again(earlier_run, [asdict(m) for m in results])
        print(f"mutation {module}: {len(results)} mutants re-run for the earlier survivors")
    pct = 100.0 * killed / scored if scored else 100.0
    print(f"mutation {module}: {killed}/{scored} killed ({pct:.1f} %)")
    if json_out is not None:
        json_out.write_text(json.dumps([asdict(m) for m in results], indent=1))
    return killed, scored


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("module", help="a module path such as sentinel/policy.py, or 'all'")
    ap.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    ap.add_argument("--json", type=Path, help="write every mutant and its result here")
    ap.add_argument("--sample", type=int, default=0, help="a seeded sample of N mutants")
    ap.add_argument("--seed", type=int, default=1, help="seed of --sample")
    ap.add_argument("--again", type=Path, help="re-run only the survivors in this --json file")
    ap.add_argument(
        "--operators",
        default=",".join(FIRST_SET),
        help="comma-separated operators, 'second' ... 'ninth', or 'every' (default: the first)",
    )
    args = ap.parse_args()
    named = {
        "second": SECOND_SET,
        "third": THIRD_SET,
        "fourth": FOURTH_SET,
        "fifth": FIFTH_SET,
        "sixth": SIXTH_SET,
        "seventh": SEVENTH_SET,
        "eighth": EIGHTH_SET,
        "ninth": NINTH_SET,
        "every": EVERY_SET,
    }
    ops = named.get(args.operators) or tuple(args.operators.split(","))
    unknown = set(ops) - set(EVERY_SET)
    if unknown:
        raise SystemExit(f"mutation: unknown operators {', '.join(sorted(unknown))}")
    modules = list(TESTS) if args.module == "all" else [args.module]
    many = len(modules) > 1
    total_k = total_s = 0
    for mod in modules:
        if mod not in TESTS:
            raise SystemExit(f"mutation: unknown module {mod}; one of: {', '.join(TESTS)}")
        again = _per_module(args.again, mod, many)
        if again is not None and not again.exists():
            print(f"mutation {mod}: no earlier run ({again}), skipped")
            continue
        k, s = run_module(
            mod,
            only_list=args.list,
            json_out=_per_module(args.json, mod, many),
            sample=args.sample,
            seed=args.seed,
            again=again,
            operators=ops,
        )
        total_k, total_s = total_k + k, total_s + s
    if len(modules) > 1 and not args.list:
        print(
            f"mutation all: {total_k}/{total_s} killed ({100.0 * total_k / max(1, total_s):.1f} %)"
        )
    return 0


def _per_module(path: Path | None, module: str, many: bool) -> Path | None:
    """With ``all``, each module's --json / --again file: ``run.json`` → ``run.store.json``
    (one file would hold only the last module's mutants)."""
    if path is None or not many:
        return path
    return path.with_name(f"{path.stem}.{Path(module).stem}{path.suffix}")


if __name__ == "__main__":
    sys.exit(main())
