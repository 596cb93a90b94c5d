"""The publisher's inputs: status records (CSV, streamed and vectorised), signers, revocations.

A status CSV (``doc_type,country,number,status,valid_until[,subject_id]``) is read in
chunks of ``CHUNK_BYTES``.  A chunk of plain ASCII rows without quotes (what registries
export) is split, cleaned and assembled into identities with numpy, a whole column at a
time; any other chunk (quotes, non-ASCII numbers needing NFKC, short rows) goes through
the ``csv`` module row by row, with the same normalization (``statusset.normalize_*``)
and the same errors.  Both give ``Chunk``s: identities, status codes, valid-until epochs.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sentinel.authority import csvfast
from sentinel.authority.chunks import Chunk, parse_status, parse_until
from sentinel.credentials.trustlist import Signer, TrustList, kid_of
from sentinel.errors import ConfigError
from sentinel.progress import Bar
from sentinel.trust import statusset as ss

CHUNK_BYTES = 8 << 20
MAX_FIELD = csvfast.MAX_FIELD
_Columns = csvfast.Layout
_rows_fast = csvfast.rows_fast
__all__ = ["Chunk", "parse_until", "read_status_table", "load_signers", "load_revocations"]


def _rows_slow(p: Path, text: str, c: csvfast.Layout, line0: int, cache: dict[str, int]) -> Chunk:
    idents: list[bytes] = []
    status: list[int] = []
    until: list[int] = []
    for line, row in enumerate(csv.reader(io.StringIO(text)), start=line0):
        if len(row) < c.width:
            row += [""] * (c.width - len(row))
        code = parse_status(row[c.st], f"{p}:{line}")
        subj = row[c.su].strip() if c.su is not None else ""
        number = row[c.no] if c.no is not None else ""
        if subj:
            ident = ss.normalize_subject(subj)
        elif number.strip():
            ident = ss.normalize_document(
                row[c.dt] if c.dt is not None else "",
                row[c.co] if c.co is not None else "",
                number,
            )
        else:
            raise ConfigError(f"{p}:{line}: row has neither number nor subject_id")
        idents.append(ident)
        status.append(code)
        until.append(parse_until(row[c.vu], cache, f"{p}:{line}"))
    return Chunk.of(idents, status, until)


def status_blocks(
    path: str | Path, bar: Bar | None = None
) -> tuple[csvfast.Layout, Iterator[tuple[bytes, int]]]:
    """The columns of a status CSV, and its rows as blocks of whole lines of about
    ``CHUNK_BYTES`` with the line number each starts at (``bar`` advances by bytes)."""
    p = Path(path)
    try:
        f = p.open("rb")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read status CSV: {exc.strerror}") from None
    try:
        head = f.readline()
        header = [h.strip().lower() for h in next(csv.reader([head.decode("utf-8")]), [])]
        layout = _Columns(p, header)
    except BaseException:
        f.close()
        raise

    def blocks() -> Iterator[tuple[bytes, int]]:
        with f:
            line0 = 2
            rest = b""
            while True:
                block = f.read(CHUNK_BYTES)
                if bar is not None:
                    bar.update(len(block))
                buf = rest + block
                if not block:
                    if buf and not buf.endswith(b"\n"):
                        buf += b"\n"
                    rest = b""
                else:
                    cut = buf.rfind(b"\n") + 1
                    buf, rest = buf[:cut], buf[cut:]
                if buf:
                    yield buf, line0
                    line0 += buf.count(b"\n")
                if not block:
                    return

    return layout, blocks()


def parse_block(p: Path, buf: bytes, c: csvfast.Layout, line0: int, cache: dict[str, int]) -> Chunk:
    """The rows of one block: the vectorised path, or the ``csv`` module's."""
    chunk = _rows_fast(p, buf, c, line0, cache)
    if chunk is None:
        try:
            text = buf.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: status CSV is not UTF-8") from None
        chunk = _rows_slow(p, text, c, line0, cache)
    return chunk


def read_status_table(path: str | Path, bar: Bar | None = None) -> Iterator[Chunk]:
    """The rows of a status CSV, a chunk at a time (``bar`` advances by bytes read)."""
    layout, blocks = status_blocks(path, bar)
    cache: dict[str, int] = {}
    for buf, line0 in blocks:
        yield parse_block(Path(path), buf, layout, line0, cache)


def load_signers(paths: list[str | Path] | tuple[str | Path, ...]) -> TrustList:
    """Signer certificates from trust-list JSON files, PEM or DER certificate files."""
    signers: list[Signer] = []
    for path in paths:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read signers: {exc.strerror}") from None
        if data.lstrip().startswith(b"{"):
            signers.extend(TrustList.from_json_bytes(data, str(p)))
            continue
        try:
            if b"-----BEGIN CERTIFICATE" in data:
                certs = x509.load_pem_x509_certificates(data)
            else:
                certs = [x509.load_der_x509_certificate(data)]
        except ValueError as exc:
            raise ConfigError(f"{p}: not a certificate or trust list: {exc}") from None
        for cert in certs:
            der = cert.public_bytes(serialization.Encoding.DER)
            attrs = cert.subject.get_attributes_for_oid(x509.NameOID.COUNTRY_NAME)
            country = str(attrs[0].value) if attrs else ""
            signers.append(Signer(kid_of(der), country, cert))
    return TrustList(signers)


def load_revocations(path: str | Path) -> list[str]:
    """Revocation keys: a JSON list / {"keys": [...]} or one ``UCI:<hex>`` per line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read revocations: {exc.strerror}") from None
    if text.lstrip().startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{p}: not JSON: {exc}") from None
        keys = doc["keys"] if isinstance(doc, dict) else doc
    else:
        keys = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    out = []
    for k in keys:
        kind, _, hexpart = str(k).partition(":")
        if kind not in ("UCI", "COUNTRYCODEUCI", "SIGNATURE") or not hexpart:
            raise ConfigError(f"{p}: revocation key {k!r} is not UCI:/COUNTRYCODEUCI:/SIGNATURE:")
        try:
            bytes.fromhex(hexpart)
        except ValueError:
            raise ConfigError(f"{p}: revocation key {k!r} is not hex") from None
        out.append(f"{kind}:{hexpart.lower()}")
    return out
