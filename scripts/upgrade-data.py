"""Device data for the upgrade check: made by one release, checked by the next.

    python scripts/upgrade-data.py make  DATA_DIR EXPECT.json   # with the OLD sentinel
    python scripts/upgrade-data.py check DATA_DIR EXPECT.json   # with the NEW sentinel

``make`` writes what a device in service has -- journal events with encrypted personal
fields, signed audit entries, a web user -- through the old release's own code, and
records what it wrote.  ``check`` opens the same files with the new release's code (any
schema migration runs here) and requires every event, its personal fields, the audit
chain, the device key and the user to be there.  Exit 0 when they are, else 1 with the
reason.  Used by tests/test_provision_upgrade.py and scripts/try-install.sh.  Only
interfaces present in both releases are used.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

PASSWORD = "upgrade-check-pass-1"  # a throwaway account of the check, never a real one


def make(data: Path, expect: Path) -> None:
    from sentinel.journal.audit import AuditLog, public_pem
    from sentinel.journal.journal import Event, Journal, Personal
    from sentinel.web.users import UserStore

    now = datetime.now(UTC).replace(microsecond=0)
    with Journal(data / "journal.db") as j:
        refused = j.record(
            Event(now, "v", "g", "refuse", "BAD_SIGNATURE", "dcc"),
            personal=Personal("M****** E****, 1974", "", "ab" * 16),
        )
        admitted = j.record(Event(now, "v", "g", "admit", "ADMIT", "dcc"))
    with AuditLog(data / "audit.db", data / "device_key.pem") as audit:
        audit.append("upgrade-check", {"note": "written by the previous release"}, now)
        head = audit.verify()
        audit_key = public_pem(audit.public_key)
    UserStore(data / "users.db").add("upgrade-alice", "manager", PASSWORD)
    doc = {
        "events": [refused, admitted],
        "personal": {refused: "M****** E****, 1974"},
        "audit_entries": head.entries,
        # the key itself, not its fingerprint: how a fingerprint is printed may change
        # between releases (it did: SHA-256 of the raw key, then of the SSH wire blob)
        "audit_key": audit_key,
        "user": "upgrade-alice",
        "device_key": (data / "device_key.pem").read_text(encoding="ascii"),
    }
    expect.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def check(data: Path, expect: Path) -> list[str]:
    from sentinel.journal.audit import AuditLog, public_pem
    from sentinel.journal.journal import Journal
    from sentinel.web.users import UserStore

    want = json.loads(expect.read_text(encoding="utf-8"))
    problems = []
    if (data / "device_key.pem").read_text(encoding="ascii") != want["device_key"]:
        problems.append("the device key changed")
    with Journal(data / "journal.db") as j:
        ids = {str(e["event_id"]) for e in j.events()}
        problems += [f"event {e} lost" for e in want["events"] if e not in ids]
        for eid, name in want["personal"].items():
            got = j.personal(eid)
            if not got or got.get("display_name") != name:
                problems.append(f"personal fields of {eid} unreadable: {got}")
    with AuditLog(data / "audit.db", data / "device_key.pem") as audit:
        report = audit.verify()
        key = public_pem(audit.public_key)
        if report.entries < want["audit_entries"] or key != want["audit_key"]:
            problems.append(f"audit chain: {report} (had {want['audit_entries']} entries)")
    users = UserStore(data / "users.db")
    if (want["user"], "manager") not in users.users():
        problems.append(f"user {want['user']} lost: {users.users()}")
    elif users.login(want["user"], PASSWORD, 1).token is None:
        problems.append(f"user {want['user']}: the password no longer verifies")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[1] not in ("make", "check"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    data, expect = Path(argv[2]), Path(argv[3])
    if argv[1] == "make":
        make(data, expect)
        print(f"upgrade-data: wrote journal, audit and user data in {data}")
        return 0
    problems = check(data, expect)
    for p in problems:
        print(f"upgrade-data: {p}", file=sys.stderr)
    if not problems:
        print(f"upgrade-data: every event, key, audit entry and user of {data} is there")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
