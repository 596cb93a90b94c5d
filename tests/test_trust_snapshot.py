"""One decision reads one bundle version, even when the sync applies another meanwhile.

The sync is played by a real apply (``sync_dir``, its own SQLite connection) run on
another thread at a chosen point and joined: no sleeps, the interleaving is forced.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.authority import healthcode_issue as hci
from sentinel.authority.publish import generate_root_key
from sentinel.authority.testing import TestBundle, build_test_bundle, sync_dir
from sentinel.config import Config, replace
from sentinel.credentials.healthcode_keys import HealthCodeKeys
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode
from sentinel.scan import Symbol
from sentinel.trust import StaticTrust
from sentinel.trust.provider import TrustSnapshot, snapshot_of
from sentinel.trust.store import StoreTrust

DAY = timedelta(days=1)


def in_thread(fn: Callable[[], object]) -> None:
    """Run ``fn`` on another thread (as the daemon's sync does) and wait for it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if errors:
        raise errors[0]


class SyncInBetween(StoreTrust):
    """A StoreTrust that, once armed, lets the sync apply the next bundle right after
    the first trust read of the decision (whichever accessor that is)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.pending: Callable[[], object] | None = None
        self.reads: list[str] = []
        super().__init__(*args, **kwargs)

    def _after(self, what: str) -> None:
        self.reads.append(what)
        apply, self.pending = self.pending, None
        if apply is not None:
            in_thread(apply)

    def snapshot(self) -> TrustSnapshot:
        snap = super().snapshot()
        self._after("snapshot")
        return snap

    def trust_list(self) -> Any:
        out = super().trust_list()
        self._after("trust_list")
        return out

    def state(self) -> Any:
        out = super().state()
        self._after("state")
        return out

    def status(self) -> Any:
        out = super().status()
        self._after("status")
        return out

    def part(self, name: str) -> bytes | None:
        out = super().part(name)
        self._after(f"part:{name}")
        return out


@pytest.fixture
def pipeline_env(tmp_path: Path) -> Iterator[tuple[Config, Gate, Journal]]:
    cfg = replace(Config(), data_dir=str(tmp_path / "data"))
    with Gate(cfg.gate, pin_factory=MockFactory()) as gate, Journal(tmp_path / "j.db") as j:
        yield cfg, gate, j


def two_versions(
    site: Path, now: Any, v1: dict[str, Any], v2: dict[str, Any]
) -> tuple[TestBundle, Callable[[Path], object]]:
    """Publish v1 into ``site``; return it and a function publishing + applying v2."""
    root = generate_root_key()
    b1 = build_test_bundle(site, root_key=root, now=now, status=None, **v1)

    def publish_and_apply_v2(data: Path) -> object:
        b2 = build_test_bundle(site, root_key=root, now=now, status=None, **v2)
        return sync_dir(data, b2.site, b2.root_public, now=now)

    return b1, publish_and_apply_v2


def test_dcc_decision_uses_one_bundle_while_sync_applies(
    tmp_path: Path,
    pipeline_env: tuple[Config, Gate, Journal],
    signer: di.IssuerKey,
    rsa_signer: di.IssuerKey,
    now: Any,
) -> None:
    # v1 trusts `signer`; v2 trusts only `rsa_signer`
    b1, apply_v2 = two_versions(
        tmp_path / "site", now, {"signers": [signer.der]}, {"signers": [rsa_signer.der]}
    )
    data = tmp_path / "data"
    sync_dir(data, b1.site, b1.root_public, now=now)
    text = di.issue(
        di.vaccination(on="2022-01-10"), signer, issued_at=now - DAY, expires_at=now + DAY
    )
    symbol = Symbol("QRCODE", text, text.encode())
    cfg, gate, journal = pipeline_env
    with SyncInBetween(data, cfg.trust) as trust:
        pipe = Pipeline(cfg, trust, gate, journal)
        trust.pending = lambda: apply_v2(data)
        first = pipe.present(symbol, now).decision
        assert trust.pending is None  # v2 was applied during the decision
        # Read two bundle versions, this would be "bundle 1" refusing with v2's signers.
        assert (first.reason, first.bundle_version) == (ReasonCode.ADMIT, "1")
        # the next presentation sees v2 as a whole: its version, its trust list
        second = pipe.present(symbol, now).decision
        assert second.bundle_version == "2"
        assert second.reason is not ReasonCode.ADMIT
        assert trust.trust_list().lookup(signer.kid) == []
    rows = journal.events()
    assert [(r["decision"], r["bundle_version"]) for r in rows] == [
        ("admit", "1"),
        ("refuse", "2"),
    ]


def test_health_code_keys_come_from_the_decisions_bundle(
    tmp_path: Path, pipeline_env: tuple[Config, Gate, Journal], now: Any
) -> None:
    old, new = hci.Issuer.generate(), hci.Issuer.generate()

    def keys(issuer: hci.Issuer) -> dict[str, Any]:
        return {"parts": {"healthcode_keys": HealthCodeKeys((issuer.trusted(),)).to_json_bytes()}}

    b1, apply_v2 = two_versions(tmp_path / "site", now, keys(old), keys(new))
    data = tmp_path / "data"
    sync_dir(data, b1.site, b1.root_public, now=now)
    text = hci.issue(
        old,
        "K7Q2M9X4T1B8",
        "green",
        issued_at=now - timedelta(seconds=20),
        status_valid_until=now + timedelta(hours=8),
    )
    cfg, gate, journal = pipeline_env
    with SyncInBetween(data, cfg.trust) as trust:
        pipe = Pipeline(cfg, trust, gate, journal)
        trust.pending = lambda: apply_v2(data)
        d = pipe.present(Symbol("QRCODE", text, text.encode()), now).decision
        assert trust.pending is None
        assert (d.reason, d.bundle_version) == (ReasonCode.ADMIT, "1")
        # outside a decision the verifier reads the provider: now v2's keys
        assert pipe.snapshot is None
        assert pipe.healthcode is not None
        assert [k.kid for k in pipe.healthcode.keys().issuers] == [new.kid]


def test_store_snapshot_is_one_version(tmp_path: Path, signer: di.IssuerKey, now: Any) -> None:
    b1, apply_v2 = two_versions(
        tmp_path / "site",
        now,
        {"signers": [signer.der], "parts": {"note": b"one"}},
        {"signers": [], "parts": {"note": b"two"}},
    )
    data = tmp_path / "data"
    sync_dir(data, b1.site, b1.root_public, now=now)
    with StoreTrust(data) as trust:
        s1 = trust.snapshot()
        in_thread(lambda: apply_v2(data))
        s2 = trust.snapshot()
        # the old snapshot keeps its version, whole; the new one is v2, whole
        assert (s1.bundle_version, s1.part("note")) == ("1", b"one")
        assert s1.trust_list.lookup(signer.kid) != []
        assert (s2.bundle_version, s2.part("note")) == ("2", b"two")
        assert s2.trust_list.lookup(signer.kid) == []
        with pytest.raises(TypeError):
            s1.parts["note"] = b"changed"  # type: ignore[index]
        # the single accessors still answer, from the current version
        assert trust.state().bundle_version == "2" and trust.part("note") == b"two"


def test_store_reload_reads_one_commit(tmp_path: Path, now: Any) -> None:
    """A bundle committed while StoreTrust is loading the previous one is not mixed in."""
    b1, apply_v2 = two_versions(
        tmp_path / "site",
        now,
        {"parts": {"a": b"a1", "b": b"b1"}},
        {"parts": {"a": b"a2", "b": b"b2"}},
    )
    data = tmp_path / "data"
    with StoreTrust(data) as trust:  # nothing applied yet: empty
        assert trust.snapshot().bundle_version == ""
        sync_dir(data, b1.site, b1.root_public, now=now)
        store_part = trust.store.part
        fired: list[str] = []

        def part_then_sync(name: str) -> bytes | None:
            out = store_part(name)
            if not fired:  # the sync commits v2 between the loader's reads
                fired.append(name)
                in_thread(lambda: apply_v2(data))
            return out

        trust.store.part = part_then_sync  # type: ignore[method-assign]
        snap = trust.snapshot()
        assert fired
        assert snap.bundle_version == "1"
        assert (snap.part("a"), snap.part("b")) == (b"a1", b"b1")
        trust.store.part = store_part  # type: ignore[method-assign]
        snap = trust.snapshot()
        assert (snap.bundle_version, snap.part("a"), snap.part("b")) == ("2", b"a2", b"b2")


def test_static_and_file_providers_snapshot(tmp_path: Path, signer: di.IssuerKey) -> None:
    from sentinel.credentials.trustlist import TrustList
    from sentinel.trust import FileTrust

    tl = TrustList.from_certificates([signer.der], country="XX")
    st = StaticTrust(tl, parts={"rules": b"{}"})
    snap = st.snapshot()
    assert snap.trust_list is tl and snap.part("rules") == b"{}" and snap.part("x") is None
    path = tmp_path / "trust.json"
    path.write_bytes(tl.to_json_bytes())
    ft = FileTrust(path)
    assert ft.snapshot().bundle_version == "file:trust.json"
    assert ft.snapshot().trust_list.lookup(signer.kid) != []

    class Legacy:  # a provider written before snapshot(): still usable by the pipeline
        def trust_list(self) -> TrustList:
            return tl

        def state(self) -> Any:
            return st.state()

        def status(self) -> None:
            return None

        def part(self, name: str) -> bytes | None:
            return {"rules": b"[]"}.get(name)

    legacy = snapshot_of(Legacy())
    assert legacy.trust_list is tl and legacy.part("rules") == b"[]" and legacy.part("x") is None
