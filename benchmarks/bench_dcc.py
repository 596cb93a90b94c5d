"""Benchmark: one decoded QR text → Decision (base45 → zlib → COSE → signature → schema →
venue rules + CertLogic).  Prints medians in microseconds.

    .venv/bin/python benchmarks/bench_dcc.py [N]
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from sentinel.authority import dcc_issue as di
from sentinel.config import PolicyConfig
from sentinel.credentials import dcc
from sentinel.credentials.rules import default_rule_set
from sentinel.credentials.trustlist import TrustList
from sentinel.policy import TrustState, decide


def median_us(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main(n: int = 2000) -> None:
    now = datetime(2022, 5, 1, 12, tzinfo=UTC)
    day = timedelta(days=1)
    nb, na = now - 400 * day, now + 400 * day
    es, ps = (
        di.make_signer(not_before=nb, not_after=na),
        di.make_signer(rsa_key=True, not_before=nb, not_after=na),
    )
    trust = TrustList.from_certificates([es.der, ps.der])
    rules, state, rs = PolicyConfig(), TrustState(), default_rule_set()
    for name, signer in (("ES256", es), ("PS256", ps)):
        text = di.issue(
            di.vaccination(on="2022-01-10"), signer, issued_at=now - day, expires_at=now + day
        )

        def full(text: str = text) -> None:
            decide(dcc.verify(text, trust, now), rules, state, now, rule_set=rs)

        decode = median_us(lambda text=text: dcc.decode(text), n)
        whole = median_us(full, n)
        print(
            f"{name}: decode only {decode:8.1f} us   text → decision {whole:8.1f} us   "
            f"(median of {n})"
        )
    cred = dcc.verify(text, trust, now)
    only = median_us(lambda: decide(cred, rules, state, now, rule_set=rs), n)
    print(f"policy+CertLogic only: {only:.1f} us")
    schema_cost(text, trust, now, n)


def schema_cost(text: str, trust: TrustList, now: datetime, n: int) -> None:
    """What the official-schema check adds to one decision, and the two libraries measured."""
    from sentinel.credentials import dcc_schema

    claims = dcc.decode_claims(dcc.decode(text).payload)
    dgc = claims[dcc.CWT_HCERT][1]
    real = dcc_schema.check_schema

    def chain() -> None:
        dcc.verify(text, trust, now)

    def skipped(d: object) -> str:
        return "skipped"

    # interleaved, so both halves see the same load on a shared machine
    with_t, without_t = [], []
    for _ in range(n):
        for schema_on, out in ((True, with_t), (False, without_t)):
            dcc_schema.check_schema = real if schema_on else skipped  # type: ignore[assignment]
            t0 = time.perf_counter()
            chain()
            out.append(time.perf_counter() - t0)
    dcc_schema.check_schema = real  # type: ignore[assignment]
    with_schema = statistics.median(with_t) * 1e6
    without = statistics.median(without_t) * 1e6
    fast = median_us(lambda: real(dgc), n)
    print(f"schema check (fastjsonschema, as used): {fast:.1f} us per payload")
    try:
        import jsonschema
    except ImportError:
        print("jsonschema not installed: comparison skipped")
    else:
        doc = dcc_schema.to_json(dgc)
        v = jsonschema.Draft202012Validator(dcc_schema._raw_schema(doc["ver"]))
        slow = median_us(lambda: v.is_valid(dcc_schema.to_json(dgc)), n)
        print(f"same payload with jsonschema Draft202012Validator: {slow:.1f} us")
    print(
        f"schema validation adds {with_schema - without:.1f} us median per decision "
        f"(budget 100 us; chain {without:.1f} → {with_schema:.1f} us)"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
