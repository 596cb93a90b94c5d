"""ID documents and identity match through the real pipeline (SQLite journal, mock pins)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from sentinel.authority import dcc_issue as di
from sentinel.config import Config, ScanConfig, replace
from sentinel.credentials.iddoc import check_digit as cd
from sentinel.credentials.trustlist import TrustList
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode
from sentinel.scan import Symbol, synth
from sentinel.trust import StaticTrust
from sentinel.trust.provider import StatusEntry

NUMBER = "C01X00T47"


def td3(surname: str, given: str, born: str, number: str = NUMBER) -> str:
    """A valid TD3 MRZ for the given holder (check digits from the project)."""
    l1 = ("P<AUT" + surname + "<<" + given + "<" * 44)[:44]
    body = number + cd(number) + "AUT" + born + cd(born) + "F" + "310101" + cd("310101")
    body += "<" * 14 + "<"
    return l1 + "\n" + body + cd(body[0:10] + body[13:20] + body[21:43])


class _Status:
    def lookup_document(self, doc_type: str, country: str, number: str) -> StatusEntry | None:
        if (doc_type, country, number) == ("P", "AUT", NUMBER):
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


def test_passport_from_the_camera_is_decided_and_never_stored(
    tmp_path: Path, trust: TrustList, now: datetime
) -> None:
    mrz = td3("MUSTERMANN", "ERIKA", "740812")
    frame = synth.place_image(
        synth.render_id_card(mrz, seed=3), 1280, 720, synth.Degrade(angle_deg=4, fill=0.8)
    )
    pipe, journal, gate = _pipe(tmp_path, trust, id_every_frames=1)
    with gate, journal:
        outcomes = pipe.process_frame(frame, now, mono=0.0)
        outcomes += pipe.process_frame(frame, now, mono=0.1)  # held still: same presentation
        assert [o.decision.reason for o in outcomes] == [ReasonCode.ADMIT]
        unknown = td3("MUSTERMANN", "ERIKA", "740812", number="X12345678")
        refused = pipe.present(Symbol("MRZ", unknown, b""), now)
        assert refused.decision.reason is ReasonCode.STATUS_UNKNOWN
        broken = mrz[:-1] + str((int(mrz[-1]) + 1) % 10)
        assert pipe.present(Symbol("MRZ", broken, b""), now).decision.reason is (
            ReasonCode.ID_UNREADABLE
        )
        rows = journal.events()
    assert [r["reason"] for r in rows] == ["ADMIT", "STATUS_UNKNOWN", "ID_UNREADABLE"]
    for f in tmp_path.iterdir():  # the raw number and the full name never reach disk
        if f.is_file():
            data = f.read_bytes()
            assert NUMBER.encode() not in data and b"MUSTERMANN" not in data


def test_identity_match_certificate_then_id(
    tmp_path: Path, trust: TrustList, signer: di.IssuerKey, now: datetime
) -> None:
    cert = di.issue(
        di.vaccination(on="2022-01-10"),
        signer,
        issued_at=now - timedelta(days=1),
        expires_at=now + timedelta(days=30),
        holder=di.person("Mustermann", "Erika", "1974-08-12"),
    )
    pipe, journal, gate = _pipe(tmp_path, trust, identity_match=True, identity_window_s=10)
    same = td3("MUSTERMANN", "ERIKA", "740812")
    other = td3("MUSTERMANN", "ERIKA", "750812")
    with gate, journal:
        first = pipe.present(Symbol("QRCODE", cert, cert.encode()), now)
        assert first.decision.reason is ReasonCode.ID_REQUIRED and not first.decision.admit
        second = pipe.present(Symbol("MRZ", same, b""), now + timedelta(seconds=3))
        assert second.decision.reason is ReasonCode.ADMIT and gate.pulses == 1
        pipe.present(Symbol("QRCODE", cert, cert.encode()), now)
        third = pipe.present(Symbol("MRZ", other, b""), now + timedelta(seconds=3))
        assert third.decision.reason is ReasonCode.IDENTITY_MISMATCH
        pipe.present(Symbol("QRCODE", cert, cert.encode()), now)
        late = pipe.present(Symbol("MRZ", same, b""), now + timedelta(seconds=30))
        assert late.decision.reason is ReasonCode.ADMIT  # too late: the ID alone decides
