"""The device never imports the authority's package (issue #21 item 4).

A fresh interpreter with a meta-path finder that refuses ``sentinel.authority`` imports
every other module of ``sentinel`` and builds the CLI parser: nothing may reach for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Not device code: the demos play the authority too (they issue their own credentials).
NOT_DEVICE = ("sentinel.authority", "sentinel.demo", "sentinel.demo_camera", "sentinel.demo_serve")

_PROBE = r"""
import importlib, importlib.abc, json, pkgutil, sys
import warnings
warnings.simplefilter('ignore')

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "sentinel.authority" or name.startswith("sentinel.authority."):
            raise ModuleNotFoundError(f"blocked: {name}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
import sentinel
skip = tuple(json.loads(sys.argv[1]))
done, failed = [], {}
for info in pkgutil.walk_packages(sentinel.__path__, "sentinel."):
    if info.name == "sentinel.__main__":  # runs the CLI when imported
        continue
    if any(info.name == s or info.name.startswith(s + ".") for s in skip):
        continue
    try:
        importlib.import_module(info.name)
        done.append(info.name)
    except Exception as exc:
        failed[info.name] = f"{type(exc).__name__}: {exc}"
from sentinel.cli import build_parser
commands = sorted(build_parser()._subparsers._group_actions[0].choices)
leaked = sorted(m for m in sys.modules if m.startswith("sentinel.authority"))
print(json.dumps({"done": done, "failed": failed, "commands": commands, "leaked": leaked}))
"""


def _probe() -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(NOT_DEVICE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.splitlines()[-1])


def test_device_modules_import_without_the_authority_package() -> None:
    r = _probe()
    assert r["failed"] == {}
    assert r["leaked"] == []
    # the probe really walked the device: verification, store, sync, pipeline, daemon
    for m in (
        "sentinel.trust.store",
        "sentinel.trust.sync",
        "sentinel.credentials.dcc",
        "sentinel.credentials.records",
        "sentinel.pipeline",
        "sentinel.daemon",
    ):
        assert m in r["done"]
    # the device's commands stay; the authority's are simply not there
    assert {"sync", "status", "records", "run", "check"} <= set(r["commands"])
    assert "publish" not in r["commands"] and "issue-code" not in r["commands"]


def test_the_blocker_would_catch_an_import() -> None:
    """The probe is not vacuous: the demo (which issues certificates) fails under it."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(["sentinel.authority"])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    r = json.loads(out.stdout.splitlines()[-1])
    assert "sentinel.demo" in r["failed"]
    assert "blocked: sentinel.authority" in r["failed"]["sentinel.demo"]
