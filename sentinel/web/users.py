"""Accounts, sessions, lock-out and the kiosk override PIN, in ``users.db`` (SQLite).

Passwords and the PIN are hashed with scrypt (``hashlib.scrypt``, RFC 7914; n=2**14,
r=8, p=1 and a 16-byte random salt per hash), compared in constant time.  Session
cookies carry a random token; only its SHA-256 is stored, so a copy of users.db does
not let anyone log in.  Every method opens its own connection: the web server calls
them from worker threads.  users.db is 0600 (WAL); the lock-out counters are updated in
``BEGIN IMMEDIATE`` transactions before a secret is checked, so parallel guesses are
counted exactly (docs/security.md, D1); a busy database raises ``UserBusy`` (HTTP 429).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sentinel.errors import SentinelError
from sentinel.safefs import private_file, read_bounded

ROLES = ("staff", "manager", "auditor")
MIN_PASSWORD_LEN = 8
PIN_SUBJECT = "\x00kiosk-pin"  # lock-out key for the kiosk PIN (not a valid user name)

_N, _R, _P, _DKLEN = 2**14, 8, 1, 32

MIN_PIN_DIGITS = 6
MAX_DELAY = timedelta(minutes=5)  # longest wait between two attempts before the lock
MAX_LOCKOUT = timedelta(days=1)  # longest lock (it doubles with each lock in a row)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, pw_hash TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL, expires TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    subject TEXT PRIMARY KEY, count INTEGER NOT NULL, locked_until TEXT, next_try TEXT,
    strikes INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class UserError(SentinelError):
    """A user command cannot be carried out (unknown user, bad role, weak password)."""


class UserBusy(SentinelError):
    """users.db stayed locked by another writer for the busy timeout; try again."""


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
    retry_after_s: int = 0


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
        delay: timedelta = timedelta(seconds=1),
        busy_timeout_s: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.clock = clock
        self.max_failures = max(1, max_failures)
        self.lockout = lockout
        self.delay = delay
        self.busy_timeout_s = busy_timeout_s
        private_file(self.path)  # 0600 (and its directory 0700) whatever the umask
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")  # readers never wait for the lock-out writer
            cols = [r[1] for r in db.execute("PRAGMA table_info(failures)")]
            if cols and "strikes" not in cols:  # older schema: counters are transient
                db.execute("DROP TABLE failures")
            db.executescript(_SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
        try:
            with db:
                yield db
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from None
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (BEGIN IMMEDIATE): read-check-write of a
        failure counter is then atomic against every other connection and process."""
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise _busy(exc) from None
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
    # An attempt is counted as a failure *before* the secret is checked (scrypt takes
    # ~100 ms), in one IMMEDIATE transaction, and is only un-counted when it succeeds.
    # After failure k >= 2 the next attempt waits delay * 2**(k-2); the max_failures-th attempt
    # locks for lockout * 2**strikes (strikes: locks since the last success), at most a day.
    # So requests in flight together are refused ("locked") instead of evaluated, and no
    # late request can clear a lock another one set.
    def locked(self, subject: str) -> bool:
        return self.retry_after_s(subject) > 0

    def retry_after_s(self, subject: str) -> int:
        """Seconds until ``subject`` may try again (0: now)."""
        with self._db() as db:
            row = db.execute(
                "SELECT locked_until, next_try FROM failures WHERE subject = ?", (subject,)
            ).fetchone()
        return _wait_s(row or (), self.clock())

    def _begin(self, subject: str) -> _Attempt:
        now = self.clock()
        with self._write() as db:
            row = db.execute(
                "SELECT count, locked_until, next_try, strikes FROM failures WHERE subject = ?",
                (subject,),
            ).fetchone()
            count, locked_until, _next, strikes = row or (0, None, None, 0)
            wait = _wait_s((locked_until, _next), now)
            if wait:
                return _Attempt(False, wait)
            if locked_until:  # a lock that has run out: a new round of attempts
                count = 0
            count += 1
            lock = count >= self.max_failures
            until = next_try = None
            if lock:
                until = _iso(now + min(self.lockout * 2 ** min(strikes, 16), MAX_LOCKOUT))
                strikes += 1
            else:
                wait = self.delay * 2 ** (count - 2) if count > 1 else timedelta(0)
                next_try = _iso(now + min(wait, MAX_DELAY))
            db.execute(
                "INSERT OR REPLACE INTO failures (subject, count, locked_until, next_try, strikes)"
                " VALUES (?, ?, ?, ?, ?)",
                (subject, count, until, next_try, strikes),
            )
        return _Attempt(True, set_lock=lock)

    @staticmethod
    def _succeeded(db: sqlite3.Connection, subject: str, attempt: _Attempt) -> None:
        if attempt.set_lock:  # this attempt set the lock itself
            db.execute("DELETE FROM failures WHERE subject = ?", (subject,))
        else:  # a lock set meanwhile by another request stays
            db.execute(
                "UPDATE failures SET count = 0, next_try = NULL, strikes = 0 WHERE subject = ?",
                (subject,),
            )

    # --- login and sessions ----------------------------------------------------
    def login(self, name: str, password: str, session_minutes: float) -> LoginResult:
        """Check a password; on success create a session and return its token.

        UserBusy when users.db stays locked by another writer (the web answers 429)."""
        attempt = self._begin(name)
        if not attempt.allowed:
            return LoginResult(
                None, "locked", known_user=self._exists(name), retry_after_s=attempt.retry_after_s
            )
        with self._db() as db:
            row = db.execute("SELECT role, pw_hash FROM users WHERE name = ?", (name,)).fetchone()
        # Hash even for unknown names, so timing does not tell which names exist.
        ok = check_secret(password, row[1] if row else _DUMMY_HASH) and row is not None
        if not ok:
            return LoginResult(None, "bad", known_user=row is not None)
        with self._write() as db:
            self._succeeded(db, name, attempt)
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
    # The PIN is hashed as scrypt(HMAC-SHA256(pin key, PIN)): the pin key is a separate
    # 0600 file (users.db.pinkey), so a copy of users.db alone does not allow an offline
    # search of the PIN space; together with 6+ digits and the lock-out above, an online
    # search is impractical too (docs/security.md has the figures).
    def _pin_input(self, pin: str) -> str:
        return hmac.new(self._pin_key(), pin.encode(), hashlib.sha256).hexdigest()

    def _pin_key(self) -> bytes:
        p = self.path.with_name(self.path.name + ".pinkey")
        try:
            key = read_bounded(p, 64)
        except FileNotFoundError:
            tmp = p.with_name(f"{p.name}.{secrets.token_hex(4)}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, p)  # atomic: the first writer wins, others read its key
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
            key = read_bounded(p, 64)
        if len(key) != 32:
            raise UserError(f"{p} is damaged; set the PIN again")
        return key

    def set_pin(self, pin: str) -> None:
        if not (pin.isascii() and pin.isdigit() and MIN_PIN_DIGITS <= len(pin) <= 12):
            raise UserError(f"the PIN must be {MIN_PIN_DIGITS} to 12 digits")
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO settings (key, value) VALUES ('pin2', ?)",
                (hash_secret(self._pin_input(pin)),),
            )
            db.execute("DELETE FROM settings WHERE key = 'pin'")  # unkeyed, 4+ digits
            db.execute("DELETE FROM failures WHERE subject = ?", (PIN_SUBJECT,))

    def has_pin(self) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM settings WHERE key = 'pin2'").fetchone() is not None

    def check_pin(self, pin: str) -> str:
        """ "ok", "bad", "locked" or "unset"."""
        return self.check_pin_detail(pin)[0]

    def check_pin_detail(self, pin: str) -> tuple[str, int]:
        """(``check_pin``'s answer, seconds to wait when "locked")."""
        with self._db() as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'pin2'").fetchone()
        if row is None:
            return "unset", 0
        attempt = self._begin(PIN_SUBJECT)
        if not attempt.allowed:
            return "locked", attempt.retry_after_s
        if not (pin.isascii() and pin.isdigit() and len(pin) <= 12):
            return "bad", 0
        if not check_secret(self._pin_input(pin), row[0]):
            return "bad", 0
        with self._write() as db:
            self._succeeded(db, PIN_SUBJECT, attempt)
        return "ok", 0


@dataclass(frozen=True, slots=True)
class _Attempt:
    allowed: bool
    retry_after_s: int = 0
    set_lock: bool = False


def _wait_s(times: tuple[str | None, ...], now: datetime) -> int:
    waits = [(datetime.fromisoformat(t) - now).total_seconds() for t in times if t]
    return max([math.ceil(w) for w in waits if w > 0], default=0)


def _busy(exc: sqlite3.OperationalError) -> Exception:
    msg = str(exc)
    if "locked" in msg or "busy" in msg:
        return UserBusy("users.db is busy; try again")
    return exc


def _check_name(name: str) -> None:
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-@" for c in name):
        raise UserError("user names are 1-64 letters, digits or . _ - @")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LEN:
        raise UserError(f"passwords need at least {MIN_PASSWORD_LEN} characters")
