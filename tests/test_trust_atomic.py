"""A device killed (SIGKILL) anywhere in an apply holds the old bundle or the new one, never
a mix (issue #21 item 2), for a full apply and for a delta; the next sync completes.

The child process applies with one page per streamed chunk and kills itself at a point
drawn at random: the k-th page written, or inside the commit.  No timing is involved.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sentinel.authority.testing import StatusRecord, build_test_bundle, sync_dir
from sentinel.trust import statusset as ss
from sentinel.trust.store import StoreTrust

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=30)
N = 3000
PROBES = [0, 1, 2, 977, 1500, N - 1]

_CHILD = r"""
import os, signal, sys
from datetime import datetime, UTC
from pathlib import Path
from sentinel.authority.testing import sync_dir
from sentinel.trust import bundle as bm, statusfile as sf, store
data, site, where, k = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sf.CHUNK = sf.PER_PAGE
calls = [0]
def die():
    calls[0] += 1
    if calls[0] == k:
        os.kill(os.getpid(), signal.SIGKILL)
if where == "page":
    orig = sf.PagedWriter._write_pages
    def page(self, rows):
        die()
        orig(self, rows)
    sf.PagedWriter._write_pages = page
else:
    orig = store.BundleStore._write_meta
    def meta(self, values):
        orig(self, values)
        die()
    store.BundleStore._write_meta = meta
root = bm.load_public_key(Path(site, "root_pub.pem").read_bytes())
sync_dir(data, site, root, now=datetime(2022, 5, 1, 12, 0, tzinfo=UTC))
print("done")
"""


def _records(status: str, n: int = N) -> list[StatusRecord]:
    return [StatusRecord(status, UNTIL, "P", "XXA", f"N{i:06d}") for i in range(n)]


def _state(data: Path) -> tuple[str, str]:
    with StoreTrust(data) as t:
        look = t.status()
        assert look is not None
        seen = {
            e.status if (e := look.lookup_document("P", "XXA", f"N{i:06d}")) else "-"
            for i in PROBES
        }
        return t.state().bundle_version, "".join(sorted(seen))


@pytest.mark.parametrize("delta", [False, True], ids=["full", "delta"])
def test_sigkill_during_apply_leaves_old_or_new(tmp_path: Path, delta: bool) -> None:
    site = tmp_path / "site"
    b1 = build_test_bundle(site, status=_records("green"), now=NOW, kdf=ss.CHEAP_KDF)
    v1 = tmp_path / "v1"
    sync_dir(v1, site, b1.root_public, now=NOW)
    # v2 turns every entry red: a mix would show both colours (the delta changes all N)
    build_test_bundle(site, status=_records("red"), now=NOW, root_key=b1.root_key, kdf=ss.CHEAP_KDF)
    if not delta:
        (site / "index.json").unlink()  # no base known: the device takes the full part
    rng = random.Random(21)
    pages = -(-N // 240)
    points = [("page", rng.randint(1, pages + 1)) for _ in range(2)] + [("meta", 1)]
    outcomes = set()
    for j, (where, k) in enumerate(points):
        data = tmp_path / f"d{j}-{where}-{k}"
        shutil.copytree(v1, data)
        r = subprocess.run(
            [sys.executable, "-c", _CHILD, str(data), str(site), where, str(k)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        version, colours = _state(data)
        assert (version, colours) in {("1", "green"), ("2", "red")}, (where, k, r.stderr)
        outcomes.add(r.returncode == -signal.SIGKILL)
        # and the interrupted device catches up with the next sync
        sync_dir(data, site, b1.root_public, now=NOW)
        assert _state(data) == ("2", "red")
    assert True in outcomes  # the kills did land inside applies
