"""Helpers for other areas' tests and demos: a small signed bundle, applied in one call.

    from sentinel.authority.testing import StatusRecord, build_test_bundle, apply_test_bundle

    b = build_test_bundle(tmp_path / "site", signers=[signer.der],
                          status=[StatusRecord("green", until, "P", "XXA", "C01X00T47"),
                                  StatusRecord("red", until, subject_id="subj-2")],
                          parts={"healthcode_keys": keys_json}, now=now)
    trust = apply_test_bundle(tmp_path / "data", b, now=now)   # a StoreTrust
    trust.status().lookup_document("P", "XXA", "C01X00T47")     # StatusEntry("green", ...)

No pytest fixtures here: plain functions, usable from any test or script.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sentinel.authority.publish import (
    Inputs,
    Published,
    StatusRecord,
    default_state_dir,
    generate_root_key,
    publish,
)
from sentinel.config import TrustConfig
from sentinel.credentials.trustlist import TrustList
from sentinel.trust import bundle as bm
from sentinel.trust import sealing
from sentinel.trust.applied import StoreTrust
from sentinel.trust.store import BundleStore
from sentinel.trust.sync import DirSource, Syncer, SyncResult

__all__ = [
    "TEST_KDF",
    "BundleServer",
    "StatusRecord",
    "TestBundle",
    "apply_test_bundle",
    "build_test_bundle",
    "enroll_test_device",
    "sync_dir",
    "test_devices",
]


# Argon2id with the smallest memory RFC 9106 allows: the real tag code path, fast tests.
TEST_KDF = {"alg": "argon2id", "m_kib": 8, "t": 1, "p": 1}


def _test_device_dir(site: str | Path) -> Path:
    return default_state_dir(site) / "test-device"


def test_devices(site: str | Path) -> dict[str, Any]:
    """The one test device of ``site`` (its seal key kept in the site's private state):
    pass as ``publish(devices=...)``; ``sync_dir`` gives the device its private half."""
    pub = sealing.load_or_create_seal_key(_test_device_dir(site)).public_key()
    return {sealing.fingerprint(pub): pub}


test_devices.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def enroll_test_device(data_dir: str | Path, site: str | Path) -> None:
    """Make ``data_dir`` the test device of ``site``: give it that seal key's private half
    (what a real device has from ``sentinel enroll``)."""
    test_key = sealing.load_or_create_seal_key(_test_device_dir(site))
    if sealing.load_seal_key(data_dir) is None:
        sealing.write_seal_key(data_dir, test_key)


@dataclass(frozen=True, slots=True)
class TestBundle:
    """A published test bundle: its directory, the root key that signed it, the manifest."""

    __test__ = False  # not a pytest test class

    site: Path
    root_key: bm.PrivateKey
    manifest: bm.Manifest

    @property
    def root_public(self) -> bm.PublicKey:
        return self.root_key.public_key()

    def write_root_pub(self, path: str | Path) -> Path:
        """Write the public root key PEM (what ``trust.root_key`` names) and return its path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(bm.public_pem(self.root_key))
        return p


def _inputs(
    signers: TrustList | Iterable[bytes] | None,
    status: Iterable[StatusRecord] | None,
    revocations: Iterable[str] | None,
    rules: bytes | None,
    parts: Mapping[str, bytes] | None,
) -> Inputs:
    if signers is not None and not isinstance(signers, TrustList):
        signers = TrustList.from_certificates(list(signers), country="XX")
    return Inputs(
        status=list(status) if status is not None else None,
        signers=signers,
        revocations=list(revocations) if revocations is not None else None,
        rules=rules,
        extra_parts=dict(parts or {}),
    )


def build_test_bundle(
    site: str | Path,
    *,
    signers: TrustList | Iterable[bytes] | None = (),
    status: Iterable[StatusRecord] | None = (),
    revocations: Iterable[str] | None = (),
    rules: bytes | None = None,
    parts: Mapping[str, bytes] | None = None,
    now: datetime | None = None,
    root_key: bm.PrivateKey | None = None,
    version: int | None = None,
    expires_in: timedelta = timedelta(days=7),
    kdf: Mapping[str, Any] | None = TEST_KDF,
    next_root_key: bm.PublicKey | None = None,
) -> TestBundle:
    """Publish one signed bundle version into ``site`` (a fresh Ed25519 root unless given).

    Calling it again with the same ``site`` and ``root_key`` publishes the next version
    (with a status delta from the previous one).
    """
    key = root_key or generate_root_key()
    pub: Published = publish(
        site,
        _inputs(signers, status, revocations, rules, parts),
        [key],
        now=now or datetime.now(UTC),
        version=version,
        expires_in=expires_in,
        devices=test_devices(site),
        kdf=kdf,
        next_root_key=next_root_key,
    )
    return TestBundle(Path(site), key, pub.manifest)


def apply_test_bundle(
    data_dir: str | Path,
    bundle: TestBundle,
    *,
    config: TrustConfig | None = None,
    now: datetime | None = None,
) -> StoreTrust:
    """Apply ``bundle`` into ``data_dir`` (same checks as ``sentinel sync --from``)."""
    sync_dir(data_dir, bundle.site, bundle.root_public, now=now)
    return StoreTrust(data_dir, config)


def sync_dir(
    data_dir: str | Path,
    site: str | Path,
    root_public: bm.PublicKey,
    *,
    now: datetime | None = None,
) -> SyncResult:
    t = now or datetime.now(UTC)
    enroll_test_device(data_dir, site)
    with BundleStore(data_dir) as store:
        return Syncer(store, DirSource(site), root_key=root_public, clock=lambda: t).sync()


class BundleServer:
    """A real HTTP server on 127.0.0.1 serving a publisher directory, with ETags, and
    faults for tests: ``override`` (path → bytes served instead), ``cut`` (paths sent
    only halfway, then the connection drops).  Use as a context manager."""

    def __init__(self, root: str | Path) -> None:
        import http.server
        import threading

        self.root = Path(root)
        self.override: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.requests: list[tuple[str, str]] = []  # (path, status)
        self.raw_paths: list[str] = []  # each request's path as the client sent it
        self._conns: set[Any] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def setup(self) -> None:
                super().setup()
                server._conns.add(self.connection)

            def do_GET(self) -> None:  # noqa: N802
                import hashlib

                server.raw_paths.append(self.path)
                path = self.path.split("?", 1)[0].lstrip("/")
                body = server.override.get(path)
                if body is None:
                    f = (server.root / path).resolve()
                    if server.root.resolve() not in f.parents or not f.is_file():
                        server.requests.append((path, "404"))
                        self.send_response(404)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    body = f.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                if self.headers.get("If-None-Match") == etag:
                    server.requests.append((path, "304"))
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                server.requests.append((path, "200"))
                self.send_response(200)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if path in server.cut:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop listening and drop kept-alive connections: the server is down."""
        import socket

        self._httpd.shutdown()
        self._httpd.server_close()
        for conn in list(self._conns):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def __enter__(self) -> BundleServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
