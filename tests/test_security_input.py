"""Hostile ID text never crashes a presentation (security review D8, docs/security.md).

The review's fuzz found ``ValueError`` escaping ``read()`` for AAMVA dates holding Unicode
digits (``"199²".isdigit()`` is True, ``int()`` refuses it); ``Pipeline.present`` only
caught ``CredentialError``, so one barcode could stop the service."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.config import Config, replace
from sentinel.credentials import iddoc
from sentinel.credentials.trustlist import TrustList
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode
from sentinel.scan.symbol import Symbol
from sentinel.trust import StaticTrust

AAMVA = (
    "@\n\x1e\rANSI 636000090002DL00410278ZV03190008DLDAQT64235789\nDCSSAMPLE\nDACMICHAEL\n"
    "DBA09302030\nDBB0107199{}\nDCGUSA"
)
TD3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO74{}122F1204159ZE184226B<<<<<10"


@pytest.fixture
def pipe(tmp_path: Path):
    cfg = replace(Config(), data_dir=str(tmp_path))
    with Gate(cfg.gate, pin_factory=MockFactory()) as gate, Journal(tmp_path / "j.db") as j:
        yield Pipeline(cfg, StaticTrust(TrustList()), gate, j), gate, j


@pytest.mark.parametrize("digit", ["²", "⑥", "８", "٣", "𝟗"])
def test_d8_unicode_digits_in_id_dates_are_refusals(pipe, digit: str) -> None:
    p, gate, journal = pipe
    aamva = AAMVA.format(digit)
    out = p.present(Symbol("PDF417", aamva, aamva.encode()))
    assert out.decision.reason is ReasonCode.ID_UNREADABLE and gate.pulses == 0
    mrz = TD3.format(digit + "0")
    out = p.present(Symbol("MRZ", mrz, mrz.encode()))
    assert out.decision.reason is ReasonCode.ID_UNREADABLE
    assert [r["reason"] for r in journal.events()] == ["ID_UNREADABLE", "ID_UNREADABLE"]


def test_d8_any_reader_failure_is_a_last_resort_refusal(pipe, monkeypatch) -> None:
    """A parser slip nobody has found yet: a refusal with a reason code, journaled."""
    p, gate, journal = pipe

    def broken(*_a, **_k):
        raise IndexError("a bug in a parser")

    monkeypatch.setattr(iddoc, "parse_symbol_text", broken)
    out = p.present(Symbol("PDF417", AAMVA.format("0"), b""))
    assert not out.decision.admit and out.decision.reason is ReasonCode.ID_UNREADABLE
    monkeypatch.setattr("sentinel.pipeline.read", broken)
    out = p.present(Symbol("QRCODE", "HC1:whatever", b""))
    assert out.decision.reason is ReasonCode.MALFORMED and gate.pulses == 0
    assert [r["reason"] for r in journal.events()] == ["ID_UNREADABLE", "MALFORMED"]
