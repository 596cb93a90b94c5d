"""The mutation tool itself (scripts/mutation.py): which mutants it makes and how it names them.

A mutant the tool hides is a gap nobody measures: before 2026-12-04 mutants were told apart
by the first 87 characters of their changed text, so two different changes far along one
long statement counted as one, and the second was never run.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("mutation_tool", ROOT / "scripts/mutation.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["mutation_tool"] = mod
    spec.loader.exec_module(mod)
    yield mod
    del sys.modules["mutation_tool"]


def _mutants(tool, tmp_path: Path, source: str, ops: tuple[str, ...]):
    f = tmp_path / "m.py"
    f.write_text(source)
    return tool.mutants(f, ops)


def _shown_by_operator(found) -> dict[str, list[str]]:
    by_op: dict[str, list[str]] = {}
    for m, _ in found:
        by_op.setdefault(m.operator, []).append(m.after)
    return by_op


LONG = (
    "def f(a, b):\n"
    "    return check_the_first_long_operand_name(a) and check_the_second_long_operand(b)"
    " and a.some_field_with_a_long_name == b.another_field_with_a_long_name"
    " and a.other == b.other\n"
)


def test_changes_far_along_a_long_line_are_each_a_mutant_and_show_the_change(tool, tmp_path):
    found = _mutants(tool, tmp_path, LONG, ("CMP",))
    assert len(found) == 2  # the two == of the line, past its 90th character
    texts = {text for _, text in found}
    assert len(texts) == 2
    shown = [m.after for m, _ in found]
    assert len(set(shown)) == 2, shown
    assert any("a.some_field_with_a_long_name != b" in s for s in shown), shown
    assert any("a.other != b.other" in s for s in shown), shown
    for m, _ in found:
        assert len(m.before) <= 90 and len(m.after) <= 90


def test_two_changes_that_give_one_module_are_one_mutant(tool, tmp_path):
    # ``x + 0`` -> ``x - 0``: ARITH twice on the same text gives distinct sources; but the
    # two NUM mutants of ``(1, 1)`` each give ``(2, 1)`` / ``(1, 2)`` (distinct), while the
    # KWSWAP of two equal values gives back the original module: no mutant at all
    found = _mutants(tool, tmp_path, "def f(g):\n    return g(a=1, b=1)\n", ("KWSWAP",))
    assert found == []
    same = "def f(x):\n    if x:\n        return 1\n    if x:\n        return 1\n    return 2\n"
    guards = _mutants(tool, tmp_path, same, ("GUARD",))
    assert len(guards) == 2  # the same text on two lines: two modules
    assert len({text for _, text in guards}) == 2


def test_repeated_shown_text_on_one_line_is_numbered(tool, tmp_path):
    found = _mutants(tool, tmp_path, "def f(x):\n    return (x[0] + 1, x[0] + 1)\n", ("ARITH",))
    assert len(found) == 2
    assert [m.after for m, _ in found] == ["x[0] - 1", "x[0] - 1 [2]"]


def test_eighth_set_operators(tool, tmp_path):
    src = (
        "def f(d, g):\n"
        "    a, b = g()\n"
        "    if d:\n"
        "        a = 1\n"
        "    return g(first=a, second=b, third=d['k'], fourth=d.get('j'))\n"
    )
    by_op = _shown_by_operator(_mutants(tool, tmp_path, src, tool.EIGHTH_SET))
    assert by_op["UNPACK"] == ["b, a = g()"]
    assert sorted(by_op["IFTEST"]) == ["if False:     a = 1", "if True:     a = 1"]
    assert sorted(by_op["KEY"]) == ["d.get('j_')", "d['k_']"]
    assert len(by_op["KWSWAP"]) == 3
    assert any("first=b, second=a" in s for s in by_op["KWSWAP"])


def test_type_checking_and_main_guards_are_not_iftest_mutants(tool, tmp_path):
    src = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    import os\n"
        "if __name__ == '__main__':\n"
        "    print(1)\n"
    )
    assert _mutants(tool, tmp_path, src, ("IFTEST",)) == []


def test_every_listed_equivalent_matches_a_mutant_of_its_operator(tool):
    """An entry of mutation-equivalent.txt whose line moved excuses nothing (and would hide
    the mutant that took its place from nobody): each one matches a mutant."""
    stale = [
        f"{module}:{key}"
        for module in tool.TESTS
        for key in tool.stale_equivalents(ROOT / module, tool._equivalent(module))
    ]
    assert stale == []


def test_ninth_set_operators(tool, tmp_path):
    src = (
        "import enum\n"
        "class R(enum.Enum):\n"
        "    A = 1\n"
        "    B = 2\n"
        "def f(x, y):\n"
        "    if x < y and y:\n"
        "        return R.A\n"
        "    return R.B\n"
    )
    by_op = _shown_by_operator(_mutants(tool, tmp_path, src, tool.NINTH_SET))
    assert sorted(by_op["BOOLDROP"]) == ["x < y", "y"]
    assert by_op["CMPFLIP"] == ["y < x"]
    assert by_op["ENUM"] == ["R.B", "R.A"]  # each member read becomes the next one read
