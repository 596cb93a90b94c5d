"""The journal's own errors, not a library's: what a damaged file or key gives (each the
error the callers catch and show in one line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.errors import AuditError, JournalError
from sentinel.journal.audit import AuditLog, load_public_key


@pytest.mark.parametrize(
    "pem",
    [
        b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
        b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
        b"just text",
    ],
)
def test_a_key_that_is_not_pem_is_an_audit_error(pem: bytes) -> None:
    with pytest.raises(AuditError, match="not a PEM key"):
        load_public_key(pem)


def test_an_audit_database_that_is_not_a_database_is_a_journal_error(tmp_path: Path) -> None:
    """A file in the audit log's place that SQLite cannot open (here: 8 KiB of text): the
    log refuses with the file's name, and the file is kept as it was for the auditor."""
    db = tmp_path / "audit.db"
    junk = b"this is not an SQLite database\n" * 270
    db.write_bytes(junk)
    with pytest.raises(JournalError, match="cannot open the audit log"):
        AuditLog(db, tmp_path / "device.key")
    assert db.read_bytes() == junk
