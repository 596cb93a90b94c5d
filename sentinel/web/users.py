"""Accounts, sessions, lock-out and the kiosk override PIN, in ``users.db`` (SQLite).

Passwords and the PIN are hashed with scrypt (``hashlib.scrypt``, RFC 7914; n=2**14,
r=8, p=1 and a 16-byte random salt per hash), compared in constant time.  Session
cookies carry a random token; only its SHA-256 is stored, so a copy of users.db does
not let anyone log in.  Every method opens its own connection: the web server calls
them from worker threads.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sentinel.errors import SentinelError

ROLES = ("staff", "manager", "auditor")
MIN_PASSWORD_LEN = 8
PIN_SUBJECT = "\x00kiosk-pin"  # lock-out key for the kiosk PIN (not a valid user name)

_N, _R, _P, _DKLEN = 2**14, 8, 1, 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, pw_hash TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL, expires TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    subject TEXT PRIMARY KEY, count INTEGER NOT NULL, locked_until TEXT);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class UserError(SentinelError):
    """A user command cannot be carried out (unknown user, bad role, weak password)."""


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """scrypt hash of ``secret`` as ``scrypt$n$r$p$salt_hex$hash_hex``."""
    salt = salt or secrets.token_bytes(16)
    dk = hashlib.scrypt(
        secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN, maxmem=64 * 1024 * 1024
    )
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${dk.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    """True when ``secret`` matches the ``hash_secret`` string ``stored``."""
    try:
        algo, n, r, p, salt_hex, hash_hex = stored.split("$")
        if algo != "scrypt":
            return False
        dk = hashlib.scrypt(
            secret.encode(),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(hash_hex) // 2,
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(dk.hex(), hash_hex)


_DUMMY_HASH = hash_secret("not a password", salt=b"\x00" * 16)


@dataclass(frozen=True, slots=True)
class Session:
    name: str
    role: str
    csrf: str
    expires: datetime


@dataclass(frozen=True, slots=True)
class LoginResult:
    """``token`` is set on success; otherwise ``reason`` is "bad" or "locked"."""

    token: str | None
    reason: str = ""
    role: str = ""
    known_user: bool = False


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat()


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserStore:
    """Users with roles, server-side sessions with expiry, failure counters."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_failures: int = 5,
        lockout: timedelta = timedelta(minutes=15),
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.max_failures = max_failures
        self.lockout = lockout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=5.0)
        try:
            with db:
                yield db
        finally:
            db.close()

    # --- accounts -----------------------------------------------------------
    def add(self, name: str, role: str, password: str) -> None:
        """Create a user; UserError if the name exists, the role or password is bad."""
        _check_name(name)
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        _check_password(password)
        with self._db() as db:
            try:
                db.execute(
                    "INSERT INTO users (name, role, pw_hash, created) VALUES (?, ?, ?, ?)",
                    (name, role, hash_secret(password), _iso(self.clock())),
                )
            except sqlite3.IntegrityError:
                raise UserError(f"user {name!r} already exists") from None

    def set_password(self, name: str, password: str) -> None:
        """Change a password; ends the user's sessions and clears its lock-out."""
        _check_password(password)
        with self._db() as db:
            cur = db.execute(
                "UPDATE users SET pw_hash = ? WHERE name = ?", (hash_secret(password), name)
            )
            if cur.rowcount == 0:
                raise UserError(f"no user {name!r}")
            db.execute("DELETE FROM sessions WHERE name = ?", (name,))
            db.execute("DELETE FROM failures WHERE subject = ?", (name,))

    def remove(self, name: str) -> None:
        with self._db() as db:
            if db.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount == 0:
                raise UserError(f"no user {name!r}")
            db.execute("DELETE FROM sessions WHERE name = ?", (name,))

    def users(self) -> list[tuple[str, str]]:
        with self._db() as db:
            return list(db.execute("SELECT name, role FROM users ORDER BY name"))

    # --- lock-out -------------------------------------------------------------
    def locked(self, subject: str) -> bool:
        with self._db() as db:
            row = db.execute(
                "SELECT locked_until FROM failures WHERE subject = ?", (subject,)
            ).fetchone()
        return bool(row and row[0] and datetime.fromisoformat(row[0]) > self.clock())

    def _failed(self, db: sqlite3.Connection, subject: str) -> None:
        row = db.execute("SELECT count FROM failures WHERE subject = ?", (subject,)).fetchone()
        count = (row[0] if row else 0) + 1
        until = None
        if count >= self.max_failures:
            until, count = _iso(self.clock() + self.lockout), 0
        db.execute(
            "INSERT OR REPLACE INTO failures (subject, count, locked_until) VALUES (?, ?, ?)",
            (subject, count, until),
        )

    # --- login and sessions ----------------------------------------------------
    def login(self, name: str, password: str, session_minutes: float) -> LoginResult:
        """Check a password; on success create a session and return its token."""
        if self.locked(name):
            return LoginResult(None, "locked", known_user=self._exists(name))
        with self._db() as db:
            row = db.execute("SELECT role, pw_hash FROM users WHERE name = ?", (name,)).fetchone()
        # Hash even for unknown names, so timing does not tell which names exist.
        ok = check_secret(password, row[1] if row else _DUMMY_HASH) and row is not None
        with self._db() as db:
            if not ok:
                self._failed(db, name)
                return LoginResult(None, "bad", known_user=row is not None)
            db.execute("DELETE FROM failures WHERE subject = ?", (name,))
            now = self.clock()
            db.execute("DELETE FROM sessions WHERE expires <= ?", (_iso(now),))
            token = secrets.token_urlsafe(32)
            db.execute(
                "INSERT INTO sessions (token_hash, name, csrf, expires) VALUES (?, ?, ?, ?)",
                (
                    _token_hash(token),
                    name,
                    secrets.token_urlsafe(32),
                    _iso(now + timedelta(minutes=session_minutes)),
                ),
            )
        return LoginResult(token, role=row[0], known_user=True)

    def _exists(self, name: str) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM users WHERE name = ?", (name,)).fetchone() is not None

    def session(self, token: str | None) -> Session | None:
        """The live session for a cookie token, or None (unknown, expired, user removed)."""
        if not token:
            return None
        with self._db() as db:
            row = db.execute(
                "SELECT s.name, u.role, s.csrf, s.expires FROM sessions s "
                "JOIN users u ON u.name = s.name WHERE s.token_hash = ?",
                (_token_hash(token),),
            ).fetchone()
        if row is None:
            return None
        expires = datetime.fromisoformat(row[3])
        if expires <= self.clock():
            self.logout(token)
            return None
        return Session(row[0], row[1], row[2], expires)

    def logout(self, token: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))

    # --- kiosk override PIN -----------------------------------------------------
    def set_pin(self, pin: str) -> None:
        if not (pin.isdigit() and 4 <= len(pin) <= 12):
            raise UserError("the PIN must be 4 to 12 digits")
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('pin', ?)",
                (hash_secret(pin),),
            )
            db.execute("DELETE FROM failures WHERE subject = ?", (PIN_SUBJECT,))

    def has_pin(self) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM settings WHERE key = 'pin'").fetchone() is not None

    def check_pin(self, pin: str) -> str:
        """ "ok", "bad", "locked" or "unset"."""
        if self.locked(PIN_SUBJECT):
            return "locked"
        with self._db() as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'pin'").fetchone()
            if row is None:
                return "unset"
            if check_secret(pin, row[0]):
                db.execute("DELETE FROM failures WHERE subject = ?", (PIN_SUBJECT,))
                return "ok"
            self._failed(db, PIN_SUBJECT)
        return "bad"


def _check_name(name: str) -> None:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-@" for c in name):
        raise UserError("user names are 1-64 letters, digits or . _ - @")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise UserError(f"passwords need at least {MIN_PASSWORD_LEN} characters")
