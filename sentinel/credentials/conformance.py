"""Run the published EU DCC test vectors and the CertLogic test suite through our own code.

``run_dgc(dir)`` reads every ``*.json`` case below ``dir`` (the upstream layout nests them as
``COUNTRY/2DCode/raw/*.json``; a flat ``COUNTRY/*.json`` copy works the same), evaluates each
expected-result flag the case carries with the project's verifier functions, and returns
per-case, per-flag outcomes.  ``run_certlogic(dir)`` does the same for the CertLogic
evaluator and validator suites.  Both are pure over the files they read; the CLI prints.

Flag semantics follow the dgc-testdata README: each ``EXPECTED*`` flag says whether that one
step must succeed (true) or fail (false) on the case's own data (``PREFIX``, ``BASE45``,
``COMPRESSED``, ``COSE``, ``CBOR``, ``JSON``, ``2DCODE``, ``TESTCTX.CERTIFICATE`` and
``TESTCTX.VALIDATIONCLOCK``).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import base45
import cbor2

from sentinel.credentials import dcc
from sentinel.credentials.dcc_schema import check_schema, to_json
from sentinel.credentials.folders import walk
from sentinel.credentials.trustlist import Signer, TrustList, kid_of
from sentinel.errors import CredentialError

FLAGS = (
    "EXPECTEDPICTUREDECODE",
    "EXPECTEDUNPREFIX",
    "EXPECTEDB45DECODE",
    "EXPECTEDCOMPRESSION",
    "EXPECTEDDECODE",
    "EXPECTEDVERIFY",
    "EXPECTEDEXPIRATIONCHECK",
    "EXPECTEDKEYUSAGE",
    "EXPECTEDSCHEMAVALIDATION",
    "EXPECTEDVALIDJSON",
    "EXPECTEDVALIDOBJECT",
    "EXPECTEDENCODE",
)

MAX_CASE_BYTES = 4 * 1024 * 1024


def repo_default(*parts: str) -> Path:
    """``../shared/testdata/<parts>`` relative to the repository root (this checkout)."""
    root = Path(__file__).resolve().parents[2]
    return root.parent.joinpath("shared", "testdata", *parts)


# --- DCC cases ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlagResult:
    flag: str
    expected: bool
    actual: bool | None  # None: the case lacks the data this step needs
    detail: str = ""

    @property
    def agrees(self) -> bool:
        return self.actual is None or self.actual == self.expected


@dataclass(frozen=True, slots=True)
class CaseResult:
    name: str  # path relative to the suite directory
    description: str
    flags: tuple[FlagResult, ...]
    error: str = ""  # the case file itself could not be read

    @property
    def passed(self) -> bool:
        return not self.error and all(f.agrees for f in self.flags)


def parse_clock(text: str) -> datetime:
    """A VALIDATIONCLOCK value: ISO 8601, offsets with or without a colon, naive = UTC."""
    s = text.strip().replace("Z", "+00:00")
    # "+0200" → "+02:00"; fractional seconds beyond microseconds are cut
    if len(s) > 5 and s[-5] in "+-" and s[-4:].isdigit():
        s = s[:-2] + ":" + s[-2:]
    main, _, rest = s.partition(".")
    if rest:
        digits = "".join(c for c in rest if c.isdigit())
        tz = rest[len(digits) :]
        s = f"{main}.{digits[:6].ljust(6, '0')}{tz}"
    dt = datetime.fromisoformat(s)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _hex(case: Mapping[str, Any], key: str) -> bytes | None:
    v = case.get(key)
    if not isinstance(v, str):
        return None
    try:
        return bytes.fromhex(v)
    except ValueError:
        return None


def _certificate(case: Mapping[str, Any]) -> Signer | None:
    from cryptography import x509

    b64 = (case.get("TESTCTX") or {}).get("CERTIFICATE")
    if not isinstance(b64, str) or not b64:
        return None
    try:
        der = base64.b64decode(b64)
        return Signer(kid_of(der), "", x509.load_der_x509_certificate(der))
    except (ValueError, binascii.Error):
        return None


def _same_json(a: Any, b: Any) -> bool:
    """Equal as JSON, tolerating the two timestamp spellings (``...Z`` / ``...+00:00``)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, str) and isinstance(b, str) and a != b and len(a) >= 19 and len(b) >= 19:
        try:
            return parse_clock(a) == parse_clock(b)
        except ValueError:
            return False
    return a == b and type(a) is type(b)


def _hcert_json(payload: bytes) -> Any:
    claims = dcc.decode_claims(payload)
    h = claims.get(dcc.CWT_HCERT)
    if not isinstance(h, Mapping) or not isinstance(h.get(1), Mapping):
        raise ValueError("no hcert claim")
    return to_json(h[1])


def _step(fn: Callable[[], bool]) -> tuple[bool, str]:
    try:
        return bool(fn()), ""
    except CredentialError as exc:
        return False, f"{exc.reason.value}: {exc.detail}"
    except Exception as exc:  # a step that blows up has failed, with the reason shown
        return False, f"{type(exc).__name__}: {exc}"


def _picture(case: Mapping[str, Any]) -> bool | None:
    png = case.get("2DCODE")
    if not isinstance(png, str) or "PREFIX" not in case:
        return None
    import cv2
    import numpy as np

    from sentinel.scan import Scanner

    img = cv2.imdecode(np.frombuffer(base64.b64decode(png), np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        return False
    # a quiet zone helps when the PNG is cropped to the modules
    img = cv2.copyMakeBorder(img, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=255)
    symbols = Scanner("zxing", "pyzbar").decode(img)
    return any(s.text == case["PREFIX"] for s in symbols)


def _cose_of(case: Mapping[str, Any]) -> dcc.CoseSign1 | None:
    raw = _hex(case, "COSE")
    return dcc.decode_cose(raw) if raw is not None else None


def _type_of(cose: dcc.CoseSign1) -> str:
    t, _ = dcc.hcert(dcc.decode_claims(cose.payload))
    return t


def evaluate_case(case: Mapping[str, Any], *, picture: bool = True) -> list[FlagResult]:
    """Evaluate each expected-result flag of one published case with our own code."""
    expected: Mapping[str, Any] = case.get("EXPECTEDRESULTS") or {}
    ctx: Mapping[str, Any] = case.get("TESTCTX") or {}
    out: list[FlagResult] = []

    def run(flag: str, fn: Callable[[], bool | None]) -> None:
        if not isinstance(expected.get(flag), bool):
            return
        try:
            actual = fn()
            detail = ""
        except CredentialError as exc:
            actual, detail = False, f"{exc.reason.value}: {exc.detail}"
        except Exception as exc:
            actual, detail = False, f"{type(exc).__name__}: {exc}"
        out.append(FlagResult(flag, expected[flag], actual, detail))

    prefix, b45 = case.get("PREFIX"), case.get("BASE45")
    compressed, cose_raw = _hex(case, "COMPRESSED"), _hex(case, "COSE")

    def unprefix() -> bool | None:
        if not isinstance(prefix, str):
            return None
        body = dcc.unprefix(prefix)
        return body == b45 if isinstance(b45, str) else True

    def b45decode() -> bool | None:
        if not isinstance(b45, str):
            return None
        data = dcc.b45decode(b45)
        return data == compressed if compressed is not None else True

    def compression() -> bool | None:
        if compressed is None:
            return None
        data = dcc.inflate(compressed)
        return data == cose_raw if cose_raw is not None else True

    def decode() -> bool | None:
        cose = _cose_of(case)
        if cose is None:
            return None
        got = _hcert_json(cose.payload)
        ok = True
        if isinstance(case.get("JSON"), Mapping):
            ok = _same_json(got, case["JSON"])
        cbor = _hex(case, "CBOR")
        if cbor is not None:
            ok = ok and _same_json(got, _hcert_json_or_plain(cbor))
        return ok

    def verify() -> bool | None:
        signer = _certificate(case)
        if cose_raw is None or signer is None:
            return None
        cose = dcc.decode_cose(cose_raw)
        dcc.decode_claims(cose.payload)  # a COSE whose payload is no CWT does not verify
        dcc.find_signer(cose, TrustList([signer]))
        return True

    def expiration() -> bool | None:
        signer = _certificate(case)
        if cose_raw is None or "VALIDATIONCLOCK" not in ctx:
            return None
        cose = dcc.decode_cose(cose_raw)
        claims = dcc.decode_claims(cose.payload)
        clock = parse_clock(str(ctx["VALIDATIONCLOCK"]))
        dcc.check_times(claims, clock, dcc.NO_SKEW, require=True)
        if signer is not None:
            dcc.check_signer_validity(signer, clock)
            # the flag as dgc-testdata's test_expiration_check defines it: the signer's
            # validity also covers the certificate's [iat, exp] (hcert spec: a DSC "MUST
            # cover the Validity Time of all EHC periods signed by that key")
            c = signer.certificate
            iat, exp = claims[dcc.CWT_IAT], claims[dcc.CWT_EXP]
            if not c.not_valid_before_utc.timestamp() <= iat <= exp:
                return False
            if exp > c.not_valid_after_utc.timestamp():
                return False
        return True

    def key_usage() -> bool | None:
        signer = _certificate(case)
        if cose_raw is None or signer is None:
            return None
        cose = dcc.decode_cose(cose_raw)
        return _type_of(cose) in dcc.certificate_types(signer.certificate)

    def schema() -> bool | None:
        # the payload as signed (COSE), else as encoded in the QR text, else the bare CBOR
        if cose_raw is not None:
            payload = dcc.decode_cose(cose_raw).payload
        elif isinstance(prefix, str) and expected.get("EXPECTEDUNPREFIX", True):
            payload = dcc.decode(prefix).payload
        elif _hex(case, "CBOR") is not None:
            payload = _hex(case, "CBOR") or b""
        else:
            return None
        obj = dcc.decode_claims(payload)
        h = obj.get(dcc.CWT_HCERT)
        check_schema(h.get(1) if isinstance(h, Mapping) else obj)
        return True

    def valid_json() -> bool | None:
        cbor = _hex(case, "CBOR")
        if cbor is None or not isinstance(case.get("JSON"), Mapping):
            return None
        return _same_json(_hcert_json_or_plain(cbor), case["JSON"])

    def valid_object() -> bool | None:
        js = case.get("JSON")
        if js is None:
            return None
        return isinstance(js, Mapping) and any(k in js for k in ("v", "t", "r"))

    def encode() -> bool | None:
        js = case.get("JSON")
        if not isinstance(js, Mapping):
            return None
        # the payload survives the whole chain unchanged: CBOR → COSE → zlib → base45 → HC1:
        # (the wire encoding of the DCC spec; the issuing side lives with the authority)
        payload = cbor2.dumps({dcc.CWT_HCERT: {1: dict(js)}})
        cose = cbor2.dumps([b"\xa1\x01\x26", {}, payload, b"\0" * 64])
        text = dcc.PREFIX + base45.b45encode(zlib.compress(cose, 9)).decode()
        return _same_json(_hcert_json(dcc.decode(text).payload), js)

    if picture:
        run("EXPECTEDPICTUREDECODE", lambda: _picture(case))
    run("EXPECTEDUNPREFIX", unprefix)
    run("EXPECTEDB45DECODE", b45decode)
    run("EXPECTEDCOMPRESSION", compression)
    run("EXPECTEDDECODE", decode)
    run("EXPECTEDVERIFY", verify)
    run("EXPECTEDEXPIRATIONCHECK", expiration)
    run("EXPECTEDKEYUSAGE", key_usage)
    run("EXPECTEDSCHEMAVALIDATION", schema)
    run("EXPECTEDVALIDJSON", valid_json)
    run("EXPECTEDVALIDOBJECT", valid_object)
    run("EXPECTEDENCODE", encode)
    return out


def _hcert_json_or_plain(cbor: bytes) -> Any:
    obj = cbor2.loads(cbor)
    if isinstance(obj, Mapping) and dcc.CWT_HCERT in obj:
        obj = obj[dcc.CWT_HCERT][1]
    return to_json(obj)


def dgc_case_files(directory: Path) -> list[Path]:
    """Every ``*.json`` below ``directory`` (any nesting, symlinks followed once), sorted."""
    return sorted(walk(directory, frozenset({".json"})).files)


def run_dgc(
    directory: Path, *, picture: bool = True, only: Iterable[str] | None = None
) -> list[CaseResult]:
    """Evaluate every case under ``directory``."""
    wanted = set(only) if only is not None else None
    results = []
    for path in dgc_case_files(directory):
        try:
            name = path.relative_to(directory).as_posix()
        except ValueError:
            name = path.as_posix()
        if wanted is not None and name not in wanted:
            continue
        try:
            if path.stat().st_size > MAX_CASE_BYTES:
                raise ValueError("case file too large")
            case = json.loads(path.read_bytes())
            if not isinstance(case, dict) or "EXPECTEDRESULTS" not in case:
                continue  # not a test case (e.g. a manifest)
        except (OSError, ValueError) as exc:
            results.append(CaseResult(name, "", (), error=str(exc)))
            continue
        desc = str((case.get("TESTCTX") or {}).get("DESCRIPTION", ""))
        results.append(CaseResult(name, desc, tuple(evaluate_case(case, picture=picture))))
    return results


@dataclass(slots=True)
class FlagTally:
    agree: Counter[str] = field(default_factory=Counter)
    disagree: Counter[str] = field(default_factory=Counter)
    no_data: Counter[str] = field(default_factory=Counter)


def tally(results: Iterable[CaseResult]) -> FlagTally:
    t = FlagTally()
    for r in results:
        for f in r.flags:
            if f.actual is None:
                t.no_data[f.flag] += 1
            elif f.agrees:
                t.agree[f.flag] += 1
            else:
                t.disagree[f.flag] += 1
    return t


# --- CertLogic suites -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssertionResult:
    suite: str
    case: str
    index: int
    passed: bool
    detail: str = ""


def run_certlogic(directory: Path) -> list[AssertionResult]:
    """Run ``testSuite/*.json`` (evaluation) and ``validation-testSuite/*.json``."""
    from sentinel.credentials import certlogic

    out: list[AssertionResult] = []
    for path in sorted((directory / "testSuite").glob("*.json")):
        suite = json.loads(path.read_bytes())
        sname = f"{path.name}: {suite.get('name', '')}"
        for case in suite.get("cases", []):
            for i, a in enumerate(case.get("assertions", [])):
                expr = a.get("certLogicExpression", case.get("certLogicExpression"))
                try:
                    got = certlogic.evaluate(expr, a.get("data"))
                    ok = certlogic.same_value(got, a.get("expected"))
                    detail = "" if ok else f"got {got!r}, expected {a.get('expected')!r}"
                except certlogic.CertLogicError as exc:
                    ok, detail = False, f"error: {exc}"
                out.append(AssertionResult(sname, case.get("name", ""), i, ok, detail))
    for path in sorted((directory / "validation-testSuite").glob("*.json")):
        suite = json.loads(path.read_bytes())
        sname = f"{path.name}: {suite.get('name', '')}"
        for i, case in enumerate(suite.get("cases", [])):
            issues = certlogic.validate(case.get("certLogicExpression"))
            want = len(case.get("issues", []))
            ok = (len(issues) == 0) == (want == 0)
            detail = "" if ok else f"got {len(issues)} issue(s), expected {want}: {issues}"
            out.append(AssertionResult(sname, case.get("name", "validation"), i, ok, detail))
    return out
