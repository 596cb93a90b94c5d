"""The audit chain: every kind of tampering fails verification and names the entry."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sentinel.cli import main
from sentinel.errors import AuditError, JournalError
from sentinel.journal.audit import (
    entry_hash,
    load_export,
    open_audit,
    public_pem,
    verify_chain,
)

T0 = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
N = 6


@pytest.fixture
def data(tmp_path: Path) -> Path:
    with open_audit(tmp_path) as audit:
        kinds = ["bundle_applied", "login", "override", "purge", "config_changed", "export"]
        for i, kind in enumerate(kinds):
            audit.append(kind, {"n": i, "what": f"step {i}"}, now=T0 + timedelta(minutes=i))
    return tmp_path


def db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "audit.db", isolation_level=None)


def verify_error(data: Path) -> AuditError:
    with open_audit(data) as audit, pytest.raises(AuditError) as info:
        audit.verify()
    return info.value


def test_untouched_chain_verifies(data: Path) -> None:
    with open_audit(data) as audit:
        report = audit.verify()
        assert report.entries == N and report.head_seq == N
        assert report.key_fingerprint.startswith("SHA256:")
        assert [e["seq"] for e in audit.entries()] == list(range(1, N + 1))


@pytest.mark.parametrize("target", [1, 3, N])
def test_edited_entry_is_named(data: Path, target: int) -> None:
    with db(data) as c:
        c.execute("UPDATE audit SET details = '{\"n\":99}' WHERE seq = ?", (target,))
    err = verify_error(data)
    assert err.index == target and "edited" in str(err)


def test_edit_with_recomputed_hash_fails_on_signature(data: Path) -> None:
    with db(data) as c:
        seq, t, kind, _d, prev = c.execute(
            "SELECT seq, time, kind, details, prev_hash FROM audit WHERE seq = 3"
        ).fetchone()
        h = entry_hash(seq, t, kind, '{"n":99}', prev)
        c.execute("UPDATE audit SET details = '{\"n\":99}', hash = ? WHERE seq = 3", (h,))
    err = verify_error(data)
    assert err.index == 3 and "signature" in str(err)


def test_resigned_with_another_key_is_named(data: Path) -> None:
    other = Ed25519PrivateKey.generate()
    with db(data) as c:
        seq, t, kind, _d, prev = c.execute(
            "SELECT seq, time, kind, details, prev_hash FROM audit WHERE seq = 4"
        ).fetchone()
        h = entry_hash(seq, t, kind, '{"n":"forged"}', prev)
        c.execute(
            "UPDATE audit SET details = ?, hash = ?, signature = ? WHERE seq = 4",
            ('{"n":"forged"}', h, other.sign(bytes.fromhex(h)).hex()),
        )
    err = verify_error(data)
    assert err.index == 4 and "another key" in str(err)


def test_whole_chain_resigned_with_another_key_fails_at_first(data: Path) -> None:
    other = Ed25519PrivateKey.generate()
    with db(data) as c:
        for (seq,) in c.execute("SELECT seq FROM audit").fetchall():
            (h,) = c.execute("SELECT hash FROM audit WHERE seq = ?", (seq,)).fetchone()
            c.execute(
                "UPDATE audit SET signature = ? WHERE seq = ?",
                (other.sign(bytes.fromhex(h)).hex(), seq),
            )
    assert verify_error(data).index == 1


@pytest.mark.parametrize("target", [1, 2, 4])
def test_deleted_entry_is_named(data: Path, target: int) -> None:
    with db(data) as c:
        c.execute("DELETE FROM audit WHERE seq = ?", (target,))
    err = verify_error(data)
    assert err.index == target  # the entry now at the deleted one's position does not link
    assert "deleted" in str(err)


def test_deleted_last_entries_are_caught_by_the_head(data: Path) -> None:
    with db(data) as c:
        c.execute("DELETE FROM audit WHERE seq >= ?", (N - 1,))
    err = verify_error(data)
    assert err.index == N - 1 and "cut off the end" in str(err)


def test_forged_head_is_refused(data: Path) -> None:
    with db(data) as c:
        c.execute("DELETE FROM audit WHERE seq = ?", (N,))
        (h,) = c.execute("SELECT hash FROM audit WHERE seq = ?", (N - 1,)).fetchone()
    (data / "audit.head").write_text(json.dumps({"seq": N - 1, "hash": h, "signature": "00"}))
    assert "forged head" in str(verify_error(data))


def test_reordered_entries_are_named(data: Path) -> None:
    with db(data) as c:  # swap the contents of entries 2 and 3, keeping seq order
        r2 = c.execute("SELECT * FROM audit WHERE seq = 2").fetchone()
        r3 = c.execute("SELECT * FROM audit WHERE seq = 3").fetchone()
        c.execute("DELETE FROM audit WHERE seq IN (2, 3)")
        c.execute("INSERT INTO audit VALUES (2,?,?,?,?,?,?)", r3[1:])
        c.execute("INSERT INTO audit VALUES (3,?,?,?,?,?,?)", r2[1:])
    err = verify_error(data)
    assert err.index == 2


def test_reordered_export_is_named(data: Path, tmp_path: Path) -> None:
    with open_audit(data) as audit:
        audit.export(tmp_path / "a.json")
    doc = json.loads((tmp_path / "a.json").read_text())
    doc["entries"][2], doc["entries"][3] = doc["entries"][3], doc["entries"][2]
    (tmp_path / "a.json").write_text(json.dumps(doc))
    exp = load_export(tmp_path / "a.json")
    with pytest.raises(AuditError) as info:
        verify_chain(exp.entries, exp.public_key, exp.head)
    assert info.value.index == 3 and "reordered" in str(info.value)


def test_export_verifies_elsewhere_and_refuses_tampering(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "elsewhere" / "audit.json"
    with open_audit(data) as audit:
        assert audit.export(out) == N
        pub = tmp_path / "device.pub.pem"
        pub.write_text(public_pem(audit.public_key))
    assert main(["audit", "verify", "--file", str(out), "--pubkey", str(pub)]) == 0
    assert f"{N} entries, whole" in capsys.readouterr().out

    # another device's key pinned: refused
    other = tmp_path / "other.pub.pem"
    other.write_text(public_pem(Ed25519PrivateKey.generate().public_key()))
    assert main(["audit", "verify", "--file", str(out), "--pubkey", str(other)]) == 1
    assert "different key" in capsys.readouterr().err

    doc = json.loads(out.read_text())
    cut = dict(doc, entries=doc["entries"][:-2])  # entries cut off the end of the file
    (tmp_path / "cut.json").write_text(json.dumps(cut))
    assert main(["audit", "verify", "--file", str(tmp_path / "cut.json")]) == 1
    assert f"entry {N - 1}" in capsys.readouterr().err

    edited = json.loads(out.read_text())
    edited["entries"][1]["kind"] = "override"
    (tmp_path / "edited.json").write_text(json.dumps(edited))
    assert main(["audit", "verify", "--file", str(tmp_path / "edited.json")]) == 1
    assert "entry 2" in capsys.readouterr().err

    swapped = json.loads(out.read_text())  # the whole file re-signed by an impostor key
    impostor = Ed25519PrivateKey.generate()
    swapped["device_public_key"] = public_pem(impostor.public_key())
    for e in swapped["entries"]:
        e["signature"] = impostor.sign(bytes.fromhex(e["hash"])).hex()
    (tmp_path / "swapped.json").write_text(json.dumps(swapped))
    assert main(["audit", "verify", "--file", str(tmp_path / "swapped.json")]) == 1
    assert "head" in capsys.readouterr().err  # the head still carries the device signature
    assert (
        main(["audit", "verify", "--file", str(tmp_path / "swapped.json"), "--pubkey", str(pub)])
        == 1
    )

    (tmp_path / "junk.json").write_text("{not json")
    assert main(["audit", "verify", "--file", str(tmp_path / "junk.json")]) == 1
    assert "not a JSON audit export" in capsys.readouterr().err


def test_concurrent_appenders_keep_one_chain(tmp_path: Path) -> None:
    logs = [open_audit(tmp_path) for _ in range(3)]
    try:

        def work(k: int) -> None:
            for i in range(15):
                logs[k].append("login", {"k": k, "i": i})

        threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = logs[0].verify()
        assert report.entries == 45 and logs[0].head() is not None
        assert logs[0].head()["seq"] == 45  # type: ignore[index]
    finally:
        for log in logs:
            log.close()


def test_exactly_one_entry_cut_off_the_end_is_caught(data: Path) -> None:
    with db(data) as c:
        c.execute("DELETE FROM audit WHERE seq = ?", (N,))
    err = verify_error(data)
    assert err.index == N and "cut off the end" in str(err)


def test_rewritten_last_entry_with_the_device_key_is_caught_by_the_head(data: Path) -> None:
    """Whoever holds the device key can re-sign a rewritten last entry so that the chain
    itself verifies; the signed head still names the original hash."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key((data / "device_key.pem").read_bytes(), None)
    with db(data) as c:
        seq, t, kind, _d, prev = c.execute(
            "SELECT seq, time, kind, details, prev_hash FROM audit WHERE seq = ?", (N,)
        ).fetchone()
        details = '{"n":99}'
        body = json.dumps([seq, t, kind, details, prev], separators=(",", ":"))
        h = hashlib.sha256(body.encode()).hexdigest()
        sig = key.sign(bytes.fromhex(h)).hex()  # type: ignore[call-arg,union-attr]
        c.execute(
            "UPDATE audit SET details = ?, hash = ?, signature = ? WHERE seq = ?",
            (details, h, sig, N),
        )
    err = verify_error(data)
    assert err.index == N and "head hash" in str(err)


def test_renumbered_entries_are_caught_even_without_a_head(data: Path) -> None:
    """The device-key holder renumbers an entry and re-signs the rest of the chain; with no
    head to compare (a chain read on its own), the sequence numbers still give it away."""
    from cryptography.hazmat.primitives import serialization

    from sentinel.journal.audit import entry_hash

    key = serialization.load_pem_private_key((data / "device_key.pem").read_bytes(), None)
    with open_audit(data) as audit:
        entries = [dict(e) for e in audit.entries()]
        public = audit.public_key
    prev = entries[1]["hash"]
    for e in entries[2:]:
        e["seq"] = e["seq"] + 1  # 3, 4, ... become 4, 5, ...
        e["prev_hash"] = prev
        e["hash"] = entry_hash(e["seq"], e["time"], e["kind"], e["details"], prev)
        e["signature"] = key.sign(bytes.fromhex(e["hash"])).hex()  # type: ignore[call-arg,union-attr]
        prev = e["hash"]
    with pytest.raises(AuditError, match="sequence number") as info:
        verify_chain(entries, public)
    assert info.value.index == 3


@pytest.mark.parametrize("head", [b"not json", b"[1, 2]", b'"a string"'])
def test_an_unreadable_head_record_is_an_audit_error(data: Path, head: bytes) -> None:
    (data / "audit.head").write_bytes(head)
    assert "unreadable head record" in str(verify_error(data))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"\xff\xfe", "not a JSON audit export"),
        (b'{"format": "other/1", "entries": []}', "not a sentinel-audit-export/1 file"),
        (b"[]", "not a sentinel-audit-export/1 file"),
        (b'{"format": "sentinel-audit-export/1", "entries": [1]}', "list of objects"),
        (b'{"format": "sentinel-audit-export/1", "entries": {}}', "list of objects"),
        (b'{"format": "sentinel-audit-export/1", "entries": ""}', "list of objects"),
    ],
)
def test_a_bad_export_file_is_named(tmp_path: Path, content: bytes | None, message: str) -> None:
    from sentinel.journal.audit import load_export

    f = tmp_path / "export.json"
    if content is not None:
        f.write_bytes(content)
    with pytest.raises(AuditError, match=message):
        load_export(f)


def test_a_head_stripped_of_its_sequence_number_is_forged(tmp_path: Path) -> None:
    """The head's signature covers its seq: a head without one names no entry."""
    with open_audit(tmp_path) as audit:
        audit.append("login", {"user": "admin"}, now=T0)
    head = json.loads((tmp_path / "audit.head").read_text())
    assert head["seq"] == 1
    del head["seq"]
    (tmp_path / "audit.head").write_text(json.dumps(head))
    assert "forged head" in str(verify_error(tmp_path))


def test_the_lock_file_is_private_and_closing_leaves_no_descriptor(tmp_path: Path) -> None:
    import os
    import stat

    before = len(os.listdir("/proc/self/fd"))
    for _ in range(3):
        with open_audit(tmp_path) as audit:
            audit.append("login", {"user": "admin"})
    assert len(os.listdir("/proc/self/fd")) == before
    assert stat.S_IMODE((tmp_path / "audit.lock").stat().st_mode) == 0o600
    with pytest.raises(JournalError, match="audit log is closed"):
        audit.append("login", {"user": "late"})


def test_details_are_stored_as_canonical_json(tmp_path: Path) -> None:
    """Sorted keys, no spaces: the same details always hash the same."""
    with open_audit(tmp_path) as audit:
        audit.append("config_changed", {"zeta": 1, "alpha": {"b": 2, "a": [1, 2]}}, now=T0)
        (entry,) = audit.entries()
    assert entry["details"] == '{"alpha":{"a":[1,2],"b":2},"zeta":1}'


_APPEND = """
import sys
from sentinel.journal.audit import open_audit
with open_audit(sys.argv[1]) as a:
    a.append("config_changed", {"what": "from another process"})
"""


def _waits_on_flock(pid: int, inode: int) -> bool:
    """True when /proc/locks lists ``pid`` as blocked on a flock of ``inode``."""
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        waiter = len(f) > 6 and f[1:3] == ["->", "FLOCK"]  # "N: -> FLOCK ... PID D:D:INO"
        if waiter and f[5] == str(pid) and f[6].rsplit(":", 1)[-1] == str(inode):
            return True
    return False


def test_an_appender_in_another_process_waits_for_the_append_lock(tmp_path: Path) -> None:
    """The head file only moves forward because appenders take turns across processes:
    while one holds the append lock (here this test, through its own descriptor), an
    appender in another process blocks on it in the kernel and appends after."""
    import fcntl
    import os
    import subprocess
    import sys

    with open_audit(tmp_path) as audit:
        audit.append("login", {"user": "admin"})
    lock = tmp_path / "audit.lock"
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    child = subprocess.Popen([sys.executable, "-c", _APPEND, str(tmp_path)])
    try:
        # until the kernel lists the child as a waiter: a child that never waits for the
        # lock exits instead (with its entry appended under our lock)
        while not _waits_on_flock(child.pid, lock.stat().st_ino):
            try:
                child.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"the other process finished (rc {child.returncode}) under our lock")
        con = db(tmp_path)
        assert con.execute("SELECT count(*) FROM audit").fetchone()[0] == 1  # ours only
        con.close()
    finally:
        os.close(fd)  # releases the lock
    assert child.wait(timeout=60) == 0
    with open_audit(tmp_path) as audit:
        report = audit.verify()
        assert report.entries == 2 and audit.head()["seq"] == 2  # type: ignore[index]


def test_the_head_is_signed_over_its_documented_bytes(tmp_path: Path) -> None:
    """docs/retention.md: ``audit.head``'s signature is Ed25519 over the JSON array
    ``["sentinel-audit-head/1",seq,"hash"]`` without spaces, so an auditor's own tool can
    check it with nothing but the device public key (built here by hand, not by the
    module)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    with open_audit(tmp_path) as audit:
        audit.append("login", {"user": "admin"}, now=T0)
        audit.append("export", {"n": 1}, now=T0)
        pem = public_pem(audit.public_key)
    head = json.loads((tmp_path / "audit.head").read_text())
    message = f'["sentinel-audit-head/1",{head["seq"]},"{head["hash"]}"]'.encode()
    load_pem_public_key(pem.encode()).verify(bytes.fromhex(head["signature"]), message)  # type: ignore[union-attr]
    assert head["seq"] == 2


def test_the_key_fingerprint_is_the_one_ssh_keygen_prints(tmp_path: Path) -> None:
    """The report's key fingerprint is OpenSSH's (``SHA256:`` and unpadded base64), checked
    against ``ssh-keygen -l`` on the same key: an auditor compares the two by eye."""
    import shutil
    import subprocess

    from cryptography.hazmat.primitives import serialization

    from sentinel.journal.audit import fingerprint

    tool = shutil.which("ssh-keygen")
    assert tool, "ssh-keygen (openssh-client) is a test tool: scripts/setup.sh --test"
    key = Ed25519PrivateKey.generate().public_key()
    f = tmp_path / "k.pub"
    f.write_bytes(
        key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    out = subprocess.run([tool, "-l", "-E", "sha256", "-f", str(f)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert fingerprint(key) == out.split()[1]


def test_an_append_unless_an_entry_has_that_detail_writes_it_once(tmp_path: Path) -> None:
    """``append(..., unless=(field, value))`` (the repair of an entry a crash left owed):
    a second append of the same detail writes nothing and returns 0; another value, or the
    same value under another kind, is appended."""
    with open_audit(tmp_path) as audit:
        first = audit.append("override", {"event_id": "e1"}, T0, unless=("event_id", "e1"))
        again = audit.append("override", {"event_id": "e1"}, T0, unless=("event_id", "e1"))
        other = audit.append("override", {"event_id": "e2"}, T0, unless=("event_id", "e2"))
        kind = audit.append("login", {"event_id": "e1"}, T0, unless=("event_id", "e1"))
        assert (first, again, other, kind) == (1, 0, 2, 3)
        assert len(audit.entries()) == 3
        audit.verify()


@pytest.mark.parametrize(
    "bad",
    [
        {"seq": None},  # TypeError
        {"seq": "two"},  # ValueError
        {"hash": None},  # present, but str(None) is no hash: edited
        {"signature": KeyError},  # the field missing: KeyError
    ],
    ids=["seq-null", "seq-text", "hash-null", "signature-missing"],
)
def test_an_exported_entry_with_a_bad_field_is_named_not_a_crash(data: Path, bad: dict) -> None:
    """An export read elsewhere is data: a sequence number of the wrong type or text is
    a malformed entry with its position; no field turns into an exception of its own."""
    from sentinel.journal.audit import verify_chain

    with open_audit(data) as audit:
        entries = [dict(e) for e in audit.entries()]
        key = audit.public_key
    entries[1].update(bad)
    for name in [k for k, v in bad.items() if v is KeyError]:
        del entries[1][name]
    with pytest.raises(AuditError) as info:
        verify_chain(entries, key)
    assert info.value.index == 2


def test_an_export_says_when_it_was_made(data: Path, tmp_path: Path) -> None:
    """The export's time travels with it (an auditor reads how old the copy is), in UTC
    whatever zone ``now`` was given in."""
    from datetime import timezone

    made = datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1)))
    with open_audit(data) as audit:
        audit.export(tmp_path / "a.json", now=made)
    exp = load_export(tmp_path / "a.json")
    assert exp.exported_at == "2026-03-01T08:30:00+00:00"
    assert datetime.fromisoformat(exp.exported_at) == made


def test_a_private_key_pem_gives_its_public_half(tmp_path: Path) -> None:
    """An auditor may be handed the device key file itself: its public half verifies (a key
    made by the openssl CLI, not by the code under test)."""
    import shutil
    import subprocess

    from cryptography.hazmat.primitives import serialization

    from sentinel.journal.audit import load_public_key

    openssl = shutil.which("openssl")
    if openssl is None and not os.environ.get("CI"):  # on CI a missing tool is a failure
        pytest.skip("needs the openssl CLI (scripts/setup.sh --test installs it)")
    assert openssl, "the openssl CLI is a test tool: scripts/setup.sh --test"
    key = tmp_path / "k.pem"
    subprocess.run([openssl, "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True)
    pub = subprocess.run(
        [openssl, "pkey", "-in", str(key), "-pubout"], check=True, capture_output=True
    ).stdout
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    from_private = load_public_key(key.read_bytes()).public_bytes(*raw)
    assert from_private == load_public_key(pub).public_bytes(*raw)
    assert from_private == serialization.load_pem_public_key(pub).public_bytes(*raw)


def test_an_export_carries_the_fingerprint_ssh_keygen_prints_for_its_key(
    data: Path, tmp_path: Path
) -> None:
    """The export names its device key by the fingerprint an auditor gets from
    ``ssh-keygen -l`` on the exported public key (an independent tool, not the code)."""
    import shutil
    import subprocess

    from cryptography.hazmat.primitives import serialization

    tool = shutil.which("ssh-keygen")
    assert tool, "ssh-keygen (openssh-client) is a test tool: scripts/setup.sh --test"
    with open_audit(data) as audit:
        audit.export(tmp_path / "a.json")
    doc = json.loads((tmp_path / "a.json").read_text())
    key = serialization.load_pem_public_key(doc["device_public_key"].encode())
    f = tmp_path / "k.pub"
    f.write_bytes(
        key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    )
    out = subprocess.run([tool, "-l", "-E", "sha256", "-f", str(f)], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    assert doc["key_fingerprint"] == out.split()[1]
