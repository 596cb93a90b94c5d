"""``sentinel demo``: a demo authority, demo certificates, camera-like frames, the real
pipeline with mock GPIO and a local SQLite journal.  Exits 0 when every case is decided
as expected."""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

import cv2

from sentinel.authority import dcc_issue as di
from sentinel.authority import healthcode_issue as hci
from sentinel.config import Config
from sentinel.credentials.trustlist import TrustList
from sentinel.gate import Gate
from sentinel.journal import Journal
from sentinel.pipeline import Pipeline
from sentinel.reasons import ReasonCode
from sentinel.scan import open_source
from sentinel.scan.synth import Degrade, blank_frame, place, render_qr
from sentinel.trust import FileTrust, StaticTrust

FPS = 15


@dataclass(frozen=True, slots=True)
class DemoCase:
    name: str
    text: str
    expected: ReasonCode


def make_cases(
    now: datetime, codes: hci.DemoCodes | None = None
) -> tuple[list[DemoCase], TrustList]:
    """Issue the demo certificates; return them and the trust list that accepts the good ones.

    ``codes``: health-code presentations to add (their keys and status set go to the trust).
    """
    authority = di.make_signer("XX", common_name="Sentinel Demo Authority DSC")
    rogue = di.make_signer("XX", common_name="Unknown Issuer")
    day = timedelta(days=1)
    iat, exp = now - 30 * day, now + 335 * day
    vac = di.vaccination(on=(now - 60 * day).date().isoformat())
    # a forgery: signed by the rogue key but claiming the authority's kid
    forged = di.IssuerKey(rogue.private_key, authority.certificate)
    cases = [
        DemoCase(
            "valid vaccination",
            di.issue(vac, authority, issued_at=iat, expires_at=exp),
            ReasonCode.ADMIT,
        ),
        DemoCase(
            "valid recent test",
            di.issue(
                di.test(now - timedelta(hours=5)),
                authority,
                issued_at=now - timedelta(hours=4),
                expires_at=now + 2 * day,
                holder=di.person("Chen", "Wei", "1990-03-04"),
            ),
            ReasonCode.ADMIT,
        ),
        DemoCase(
            "test too old",
            di.issue(
                di.test(now - timedelta(hours=80)),
                authority,
                issued_at=now - timedelta(hours=79),
                expires_at=now + 2 * day,
                holder=di.person("Li", "Na", "1985-11-30"),
            ),
            ReasonCode.TEST_TOO_OLD,
        ),
        DemoCase(
            "expired certificate",
            di.issue(
                vac,
                authority,
                issued_at=now - 400 * day,
                expires_at=now - day,
                holder=di.person("Schmidt", "Jonas", "1969-01-20"),
            ),
            ReasonCode.EXPIRED,
        ),
        DemoCase(
            "wrong signature",
            di.issue(
                vac,
                forged,
                issued_at=iat,
                expires_at=exp,
                holder=di.person("Forge", "Fred", "1977-07-07"),
            ),
            ReasonCode.BAD_SIGNATURE,
        ),
        DemoCase(
            "unknown signer",
            di.issue(
                vac,
                rogue,
                issued_at=iat,
                expires_at=exp,
                holder=di.person("Rogue", "Rita", "1988-08-08"),
            ),
            ReasonCode.UNKNOWN_SIGNER,
        ),
        DemoCase("damaged certificate", "HC1:NCF%RN%TSMAHN-H:L8" + "!!" * 20, ReasonCode.MALFORMED),
        DemoCase("garbage QR", "https://example.invalid/not-a-certificate", ReasonCode.UNREADABLE),
    ]
    cases += [DemoCase(*c) for c in (codes.cases if codes else [])]
    return cases, TrustList.from_certificates([authority.der], country="XX")


def render_frames(
    cases: list[DemoCase], out: Path, *, width: int = 1280, height: int = 720
) -> None:
    """Each case: 8 frames of a slightly moving, tilted, blurred phone; then an empty scene.

    Frames are JPEG, as a USB camera's MJPEG stream delivers them; the empty entrance is
    one still scene, which the scanner's motion check skips without decoding.
    """
    out.mkdir(parents=True, exist_ok=True)
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 90]
    empty = blank_frame(width, height, seed=0)
    n = 0
    for ci, case in enumerate(cases):
        code = render_qr(case.text, module_px=8)
        for k in range(8):
            d = Degrade(angle_deg=-12 + 3 * k + ci, keystone=0.06, blur_px=0.6, noise=3.0, fill=0.6)
            frame = place(code, width, height, d, seed=n)
            cv2.imwrite(str(out / f"frame-{n:04d}.jpg"), frame, jpeg)
            n += 1
        for _ in range(5):
            cv2.imwrite(str(out / f"frame-{n:04d}.jpg"), empty, jpeg)
            n += 1


def demo_trust(files: FileTrust, codes: hci.DemoCodes) -> StaticTrust:
    """The trust file's list plus the health-code keys part and the subjects' status set."""
    return StaticTrust(
        files.trust_list(),
        files.state(),
        status=codes.status,
        parts={"healthcode_keys": codes.keys_json},
    )


def run_demo(out_dir: Path | None = None, *, stream: TextIO, keep: bool = False) -> int:
    """Run the demo; print a line per presentation and a summary; return the exit code."""
    tmp = None
    if out_dir is None:
        tmp = Path(tempfile.mkdtemp(prefix="sentinel-demo-"))
        out_dir = tmp
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    try:
        print(f"Sentinel demo in {out_dir}", file=stream)
        codes = hci.demo_codes(now)
        cases, trust = make_cases(now, codes)
        (out_dir / "trust.json").write_bytes(trust.to_json_bytes())
        render_frames(cases, out_dir / "frames")
        print(
            f"  issued {len(cases)} demo credentials, rendered frames into {out_dir / 'frames'}",
            file=stream,
        )
        cfg = replace(Config(), data_dir=str(out_dir / "data"))
        expected = {c.text: c for c in cases}
        decided: dict[str, ReasonCode] = {}
        with Gate(cfg.gate) as gate, Journal(out_dir / "data" / "journal.db") as journal:
            pipe = Pipeline(
                cfg,
                demo_trust(FileTrust(out_dir / "trust.json", cfg.trust), codes),
                gate,
                journal,
                pseudonym_key=journal.pseudonym_key(),  # device-held, from the key store
            )
            source = open_source(str(out_dir / "frames"))
            frame_ms: list[float] = []
            for i, frame in enumerate(source.frames()):
                t0 = time.perf_counter()
                outcomes = pipe.process_frame(frame, now, mono=i / FPS)
                frame_ms.append((time.perf_counter() - t0) * 1000)
                for o in outcomes:
                    case = expected.get(o.symbol.text)
                    name = case.name if case else "(unexpected code)"
                    ok = case is not None and case.expected == o.decision.reason
                    if case:
                        decided[case.text] = o.decision.reason
                    verdict = "ADMIT " if o.decision.admit else "REFUSE"
                    print(
                        f"  {'ok  ' if ok else 'FAIL'} {name:<22} {verdict} "
                        f"{o.decision.reason.value:<16} relay pulse: "
                        f"{'yes' if o.decision.admit else 'no '}  {o.decision.display_name}",
                        file=stream,
                    )
            source.close()
            rows = len(journal.events())
            pulses = gate.pulses
            grants = gate.grants
        good = sum(1 for c in cases if decided.get(c.text) == c.expected)
        missing = [c.name for c in cases if c.text not in decided]
        frames = len(frame_ms)
        print(
            f"  {frames} frames, pipeline {statistics.median(frame_ms):.1f} ms median per frame "
            f"(max {max(frame_ms):.0f} ms, decisions included); {grants} gate grants "
            f"({pulses} relay unlock windows: grants while open extend it); "
            f"{rows} journal rows",
            file=stream,
        )
        if missing:
            print(f"  never read: {', '.join(missing)}", file=stream)
        print(f"{good}/{len(cases)} demo cases decided as expected", file=stream)
        return 0 if good == len(cases) and rows == len(decided) else 1
    finally:
        if tmp is not None and not keep:
            shutil.rmtree(tmp, ignore_errors=True)
