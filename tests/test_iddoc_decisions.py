"""ID documents decided end to end: their own expiry, and one identity function.

The document texts are ICAO's own specimens (ICAO Doc 9303, 8th ed. 2021: Part 4
Appendix A (TD3), Part 5 Appendix A (TD1), Part 6 Appendix A (TD2)), not MRZs made with
this project's check-digit code: holder ERIKSSON ANNA MARIA, born 1974-08-12, document
expiring 2012-04-15, issued by the specimen state UTO.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.config import Config, ScanConfig, replace
from sentinel.credentials import iddoc
from sentinel.credentials.dcc import holder_pseudonym
from sentinel.credentials.trustlist import TrustList
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode
from sentinel.scan import Symbol
from sentinel.trust import StaticTrust
from sentinel.trust.provider import StatusEntry

SPECIMEN_TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
)
SPECIMEN_TD2 = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6"
SPECIMEN_TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"
)
# ICAO 9303 specimens carry the fictional state "UTO", which a device refuses; the same
# zones with a real state (no check digit covers the state, so all digits still match)
TD3, TD2, TD1 = (m.replace("UTO", "NLD") for m in (SPECIMEN_TD3, SPECIMEN_TD2, SPECIMEN_TD1))
EXPIRY_LAST_SECOND = datetime(2012, 4, 15, 23, 59, 59, tzinfo=UTC)
GREEN = {("P", "NLD", "L898902C3"), ("I", "NLD", "D23145890")}


class _Status:
    def lookup_document(self, doc_type: str, country: str, number: str) -> StatusEntry | None:
        if (doc_type, country, number) in GREEN:
            return StatusEntry("green", datetime(2030, 1, 1, tzinfo=UTC))
        return None

    def lookup_subject(self, subject_id: str) -> StatusEntry | None:
        return None


def _pipe(tmp_path: Path, trust: TrustList, **scan: object) -> tuple[Pipeline, Journal, Gate]:
    cfg = replace(Config(), data_dir=str(tmp_path), scan=ScanConfig(**scan))  # type: ignore[arg-type]
    gate = Gate(cfg.gate, pin_factory=MockFactory())
    journal = Journal(tmp_path / "j.db")
    pipe = Pipeline(
        cfg, StaticTrust(trust, status=_Status()), gate, journal, pseudonym_key=b"k" * 32
    )
    return pipe, journal, gate


@pytest.mark.parametrize("mrz", [TD3, TD2, TD1], ids=["TD3", "TD2", "TD1"])
def test_expired_document_is_refused_with_its_own_reason(
    tmp_path: Path, trust: TrustList, mrz: str
) -> None:
    pipe, journal, gate = _pipe(tmp_path, trust)
    with gate, journal:
        last_day = pipe.present(Symbol("MRZ", mrz, b""), EXPIRY_LAST_SECOND)
        after = pipe.present(Symbol("MRZ", mrz, b""), EXPIRY_LAST_SECOND + timedelta(seconds=1))
        rows = journal.events()
    assert last_day.decision.reason is ReasonCode.ADMIT  # valid through its expiry day
    assert after.decision.reason is ReasonCode.DOCUMENT_EXPIRED and not after.decision.admit
    assert gate.pulses == 1
    assert [r["reason"] for r in rows] == ["ADMIT", "DOCUMENT_EXPIRED"]


def test_expired_document_is_refused_before_its_status_is_consulted(
    tmp_path: Path, trust: TrustList
) -> None:
    """An expired document not in the status set is refused for its expiry, the reason
    staff can act on (a new document), not for the status it lacks."""
    GREEN.discard(("P", "NLD", "L898902C3"))
    try:
        pipe, journal, gate = _pipe(tmp_path, trust)
        with gate, journal:
            valid = pipe.present(Symbol("MRZ", TD3, b""), EXPIRY_LAST_SECOND)
            late = pipe.present(Symbol("MRZ", TD3, b""), EXPIRY_LAST_SECOND + timedelta(days=1))
    finally:
        GREEN.add(("P", "NLD", "L898902C3"))
    assert valid.decision.reason is ReasonCode.STATUS_UNKNOWN
    assert late.decision.reason is ReasonCode.DOCUMENT_EXPIRED


def test_aamva_licence_expiry_is_enforced() -> None:
    """The AAMVA DL/ID card expiry (element DBA, AAMVA CDS 2020 §D.12.5) reaches the
    policy the same way as an MRZ expiry."""
    from sentinel.config import PolicyConfig
    from sentinel.policy import TrustState, decide

    text = (
        "@\n\x1e\rANSI 636014080002DL00410278ZC03190008DLDAQD1234562\nDCSSAMPLE\n"
        "DACJOHN\nDBB01311980\nDBA01312030\nDCGUSA\n"
    )
    now = datetime(2030, 1, 31, 12, tzinfo=UTC)
    cred = iddoc.to_credential("PDF417", text, now, _Status(), b"")
    before = decide(cred, PolicyConfig(), TrustState(), now)
    after = decide(cred, PolicyConfig(), TrustState(), now + timedelta(days=1))
    assert before.reason is ReasonCode.STATUS_UNKNOWN
    assert after.reason is ReasonCode.DOCUMENT_EXPIRED


@pytest.mark.parametrize("mrz", [TD3, TD2, TD1], ids=["TD3", "TD2", "TD1"])
def test_one_identity_function_for_certificate_and_document(mrz: str) -> None:
    """The DCC pseudonym (fnt/gnt/dob) and the document pseudonym come from one function;
    a truncated MRZ given name still matches, another birth date or family name does not."""
    key = b"p" * 32
    doc = iddoc.parse_mrz(mrz, today=datetime(2011, 1, 1).date())
    same = {"nam": {"fnt": "ERIKSSON", "gnt": "ANNA<MARIA"}, "dob": "1974-08-12"}
    assert iddoc.doc_pseudonym(doc, key) == holder_pseudonym(same, key) != ""
    truncated = iddoc.parse_mrz(mrz.replace("ANNA<MARIA", "ANNA<MAR<<"), today=doc.birth_date)
    assert iddoc.doc_pseudonym(truncated, key) == iddoc.doc_pseudonym(doc, key)
    for other in (
        {"nam": {"fnt": "ERIKSSON", "gnt": "ANNA<MARIA"}, "dob": "1974-08-13"},
        {"nam": {"fnt": "ERIKSON", "gnt": "ANNA<MARIA"}, "dob": "1974-08-12"},
        {"nam": {"fnt": "ERIKSSON", "gnt": "ANN"}, "dob": "1974-08-12"},
        {"nam": {"fnt": "ERIKSSON", "gnt": "ANNA<MARIA"}, "dob": "1974"},  # partial: no match
    ):
        assert holder_pseudonym(other, key) != iddoc.doc_pseudonym(doc, key)
    assert iddoc.doc_pseudonym(doc, b"q" * 32) != iddoc.doc_pseudonym(doc, key)
    assert iddoc.doc_pseudonym(doc, b"") == ""


def test_identity_match_through_the_pipeline_with_a_truncated_td1_name(tmp_path: Path) -> None:
    """Certificate, then the TD1 card of the same holder (given names cut to fit the
    30-character name line) admits once; another holder's card is a mismatch."""
    now = datetime(2011, 6, 1, 12, tzinfo=UTC)
    signer = di.make_signer(
        "XX",
        not_before=datetime(2010, 1, 1, tzinfo=UTC),
        not_after=datetime(2013, 1, 1, tzinfo=UTC),
    )
    cert = di.issue(
        di.vaccination(on="2011-01-10"),
        signer,
        issued_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=30),
        holder=di.person("Eriksson", "Anna Maria", "1974-08-12"),
    )
    card = TD1.replace("ANNA<MARIA<<<<<<<<<<", "ANNA<M<<<<<<<<<<<<<<")
    other = TD1.replace("ERIKSSON<<", "ERIKSSEN<<")
    trust_now = TrustList.from_certificates([signer.der], country="XX")
    pipe, journal, gate = _pipe(tmp_path, trust_now, identity_match=True, identity_window_s=10)
    with gate, journal:
        wait = pipe.present(Symbol("QRCODE", cert, cert.encode()), now)
        ok = pipe.present(Symbol("MRZ", card, b""), now + timedelta(seconds=2))
        pipe.present(Symbol("QRCODE", cert, cert.encode()), now + timedelta(seconds=5))
        bad = pipe.present(Symbol("MRZ", other, b""), now + timedelta(seconds=6))
    assert wait.decision.reason is ReasonCode.ID_REQUIRED
    assert ok.decision.reason is ReasonCode.ADMIT and gate.pulses == 1
    assert bad.decision.reason is ReasonCode.IDENTITY_MISMATCH


def test_document_names_are_masked_like_certificate_names() -> None:
    """D7 for ID documents: one- and two-character name words are all stars (an MRZ of
    a Chinese holder, LI<<NA, would otherwise be shown in full)."""
    doc = iddoc.parse_mrz(TD3.replace("ERIKSSON<<ANNA<MARIA", "LI<<NA<<<<<<<<<<<<<<"))
    assert iddoc.mask_names(doc) == "** **, 1974"
    full = iddoc.parse_mrz(TD3)
    assert iddoc.mask_names(full) == "E******* A*** M****, 1974"
