"""Health codes: verification time of one decoded code, code size, QR version and modules.

    .venv/bin/python benchmarks/bench_healthcode.py            # 2000 rounds
    .venv/bin/python benchmarks/bench_healthcode.py --n 50     # a quick look

Prints medians (µs) of: the pure check (base45 → COSE → signature → claims → freshness),
the device's whole step (plus replay guard, status-set lookup, policy decision), for
Ed25519 and ES256; the bytes of a typical code; and the QR version and module count at
each error-correction level (``qrcode``, the reference encoder of the test extra).
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import base45

from sentinel.authority import healthcode_issue as hci
from sentinel.config import HealthCodeConfig, PolicyConfig
from sentinel.credentials import healthcode as hc
from sentinel.credentials.healthcode_keys import HealthCodeKeys
from sentinel.policy import TrustState, decide
from sentinel.trust import StatusEntry

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
SUBJECT = "K7Q2M9X4T1B8"  # 12 characters: 60 bits of base32


def median_us(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm up
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def qr_versions(text: str) -> list[tuple[str, int, int]]:
    import qrcode
    from qrcode import constants

    out = []
    for name, level in (
        ("L", constants.ERROR_CORRECT_L),
        ("M", constants.ERROR_CORRECT_M),
        ("Q", constants.ERROR_CORRECT_Q),
    ):
        q = qrcode.QRCode(error_correction=level, border=0)
        q.add_data(text)
        q.make(fit=True)
        out.append((name, q.version, q.modules_count))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="rounds per measurement")
    args = ap.parse_args()
    status = hci.SubjectStatusSet({SUBJECT: StatusEntry("green", NOW + timedelta(days=1))})
    rules, trust = PolicyConfig(), TrustState()
    print(f"health-code verification, median of {args.n} rounds (this machine)")
    for alg in ("EdDSA", "ES256"):
        issuer = hci.Issuer.generate(alg)
        keys = HealthCodeKeys((issuer.trusted(),))
        text = hci.issue(
            issuer, SUBJECT, "green", issued_at=NOW, status_valid_until=NOW + timedelta(days=1)
        )
        data = keys.to_json_bytes()
        verifier = hc.HealthCodeVerifier(HealthCodeConfig(), lambda data=data: data)

        def device_step(text: str = text, verifier: hc.HealthCodeVerifier = verifier) -> None:
            cred = verifier.verify(text, NOW, presentation_id=1, status=status)
            decide(cred, rules, trust, NOW)

        pure = median_us(lambda text=text, keys=keys: hc.verify_code(text, keys, NOW), args.n)
        whole = median_us(device_step, args.n)
        cose = len(base45.b45decode(text[len(hc.PREFIX) :]))
        print(
            f"  {alg:<6} verify_code {pure:7.1f} µs   whole device step {whole:7.1f} µs   "
            f"COSE {cose} bytes, QR text {len(text)} characters"
        )
    print("QR symbol of a typical code (alphanumeric mode; version, modules per side):")
    for level, version, modules in qr_versions(text):
        print(f"  error correction {level}: version {version}, {modules}×{modules} modules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
