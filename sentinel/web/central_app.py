"""The central web pages: refused entries and fleet health over PostgreSQL.

``sentinel central web --dsn DSN --users FILE`` serves them.  The pieces are the device
app's: accounts, sessions and lock-out (``users.UserStore``), CSRF checks, the filter
parser, security headers, the SVG chart and the CSV writer; only the data source
(PostgreSQL through ``sentinel.fleet.central``) and the templates (``central_*.html``)
are new.  The device's ``login.html`` and ``forbidden.html`` are reused as they are: the
template loader here answers ``base.html`` with ``central_base.html``.

Scope is decided once per request from the session: a manager sees the venues listed for
them in the ``managers`` table (none listed: nothing), an auditor every venue, staff
nothing at all (refused at sign-in and on every page).  Every query takes that scope as a
parameter; a venue asked for in the URL only narrows it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import psycopg
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from sentinel.fleet import central
from sentinel.reasons import MESSAGES, ReasonCode
from sentinel.web import central_city, charts
from sentinel.web.app import (
    REFUSAL_CODES,
    TABLE_ROWS,
    SecurityHeaders,
    _age_text,
    filter_status,
    parse_filter,
)
from sentinel.web.auth import CookieAuth, busy_handler, csrf_ok, csrf_refused
from sentinel.web.data import MAX_ROWS
from sentinel.web.users import Session, UserBusy, UserStore

HERE = Path(__file__).parent
# Own cookie names: a device app on the same host (another port) shares the cookie jar.
SESSION_COOKIE = "sentinel_central_session"
CSRF_COOKIE = "sentinel_central_csrf"
REPORT_ROLES = ("manager", "auditor")
MESSAGE_TABLE = {r.value: MESSAGES[r] for r in ReasonCode}


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CentralSettings:
    """Session, lock-out and fleet thresholds of the central pages."""

    session_minutes: float = 30
    max_failures: int = 5
    lockout_minutes: float = 15
    offline_after_s: float = 180  # no heartbeat for this long: offline
    stale_after_s: float = 48 * 3600  # credential data older than this: stale
    statement_timeout_ms: int = 30_000
    allowed_hosts: list[str] = field(default_factory=lambda: ["127.0.0.1", "localhost"])


class _CentralLoader(jinja2.BaseLoader):
    """The web templates, with ``base.html`` answered by ``central_base.html``."""

    def __init__(self, directory: Path) -> None:
        self.fs = jinja2.FileSystemLoader(directory)

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        name = "central_base.html" if template == "base.html" else template
        return self.fs.get_source(environment, name)


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC)


def _buckets(
    by_bucket: dict[datetime, int], start: datetime, end: datetime, bucket: str
) -> list[tuple[datetime, int]]:
    """Every hour/day bucket in [start, end), zeros included (as ``data.counts`` does)."""
    step = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    t = start.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        t = t.replace(hour=0)
    out: list[tuple[datetime, int]] = []
    while t < end and len(out) < 1000:
        out.append((t, by_bucket.get(t, 0)))
        t += step
    return out


def _export_row(r: dict[str, Any]) -> dict[str, Any]:
    return {**r, "time": _utc(r["time"]).isoformat()}


def create_central_app(
    dsn: str,
    users_path: str | Path,
    settings: CentralSettings | None = None,
    *,
    clock: Callable[[], datetime] = _now,
) -> Starlette:
    """The Starlette app of the central pages over the PostgreSQL at ``dsn``."""
    st = settings or CentralSettings()
    users = UserStore(
        users_path,
        clock=clock,
        max_failures=st.max_failures,
        lockout=timedelta(minutes=st.lockout_minutes),
    )
    connect_kw: dict[str, Any] = {
        "autocommit": True,
        "connect_timeout": 10,
        "options": f"-c statement_timeout={int(st.statement_timeout_ms)}",
    }
    with psycopg.connect(dsn, **connect_kw) as conn:
        central.migrate(conn)

    env = jinja2.Environment(
        loader=_CentralLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    templates = Jinja2Templates(env=env)

    @contextmanager
    def db() -> Iterator[psycopg.Connection[Any]]:
        conn = psycopg.connect(dsn, **connect_kw)
        try:
            yield conn
        finally:
            conn.close()

    def render(request: Request, template: str, code: int = 200, **context: Any) -> Response:
        context.setdefault("session", None)
        return templates.TemplateResponse(request, template, context, status_code=code)

    async def require(request: Request) -> Session | Response:
        return await auth.require(request, REPORT_ROLES)

    def scope(conn: psycopg.Connection[Any], s: Session) -> list[str] | None:
        """The venues ``s`` may see: None means every venue (auditors only)."""
        if s.role == "auditor":
            return None
        return central.manager_venues(conn, s.name)

    def audit(kind: str, details: dict[str, Any]) -> None:
        with db() as conn:
            central.append_audit(conn, kind, details)

    auth = CookieAuth(
        users,
        SESSION_COOKIE,
        CSRF_COOKIE,
        st.session_minutes,
        render,
        audit,
        landing=lambda _role: "/reports",
        roles=REPORT_ROLES,
        role_refused="The {role} role cannot use the central pages.",
    )

    def query_for(
        conn: psycopg.Connection[Any], s: Session, params: Any
    ) -> tuple[central.RefusalQuery, dict[str, str], str, list[str] | None, list[str]]:
        """The query a request asks for, clamped to the session's venues."""
        f, echo, error = parse_filter(params, clock().date())
        venues = scope(conn, s)
        menu = central.known_venues(conn) if venues is None else venues
        venue = str(params.get("venue") or "")[:200] or None
        if venue is not None and venue not in menu:
            venue, error = None, "Unknown venue ignored."
        echo["venue"] = venue or ""
        q = central.RefusalQuery(f.start, f.end, venues, venue, f.gate, f.reason)
        return q, echo, error, venues, menu

    # --- login: auth.login_page, auth.login, auth.logout -------------------------------
    async def root(request: Request) -> Response:
        s = await auth.current(request)
        return RedirectResponse("/reports" if s else "/login", status_code=303)

    # --- refused entries -----------------------------------------------------------------
    async def reports(request: Request) -> Response:
        s = await require(request)
        if not isinstance(s, Session):
            return s

        def load() -> dict[str, Any]:
            with db() as conn:
                q, echo, error, venues, menu = query_for(conn, s, request.query_params)
                bucket = "hour" if q.end - q.start <= timedelta(days=2) else "day"
                c = central.refusal_counts(conn, q, bucket=bucket)
                rows = central.refused_events(conn, q, limit=TABLE_ROWS)
                gates = central.venue_gates(conn, venues)
            if q.gate and q.gate not in gates:
                gates = sorted([*gates, q.gate])
            return {
                "filter": echo,
                "error": error,
                "all_venues": venues is None,
                "venues": menu,
                "gates": gates,
                "counts": c,
                "bucket": bucket,
                "chart": Markup(  # noqa: S704 (bar_chart escapes its labels)
                    charts.bar_chart(_buckets(c.by_bucket, q.start, q.end, bucket), bucket)
                ),
                "rows": rows,
            }

        d = await run_in_threadpool(load)
        code = filter_status(parse_filter(request.query_params, clock().date())[2])
        return render(
            request,
            "central_reports.html",
            code,
            session=s,
            reasons=REFUSAL_CODES,
            messages=MESSAGE_TABLE,
            table_rows=TABLE_ROWS,
            max_rows=MAX_ROWS,
            utc=_utc,
            **d,
        )

    async def export(request: Request) -> Response:
        s = await require(request)
        if not isinstance(s, Session):
            return s
        form = await request.form()
        if not csrf_ok(s.csrf, form.get("csrf")):
            return csrf_refused()
        if filter_status(bad := parse_filter(form, clock().date())[2]) != 200:
            return PlainTextResponse(bad, status_code=400)

        def build() -> tuple[str, dict[str, str]]:
            with db() as conn:
                q, echo, _, _, _ = query_for(conn, s, form)
                rows = central.refused_events(conn, q, limit=MAX_ROWS + 1)
                truncated = len(rows) > MAX_ROWS
                rows = rows[:MAX_ROWS]
                central.append_audit(
                    conn,
                    "export",
                    {
                        "user": s.name,
                        "role": s.role,
                        "rows": len(rows),
                        "truncated": truncated,
                        "filter": echo,
                    },
                )
            return charts.to_csv([_export_row(r) for r in rows], MESSAGE_TABLE), echo

        body, echo = await run_in_threadpool(build)
        fname = f"refused_{echo['start']}_{echo['end']}.csv"
        return Response(
            body.encode("utf-8-sig"),  # BOM: spreadsheets then read the Chinese text right
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{fname}"'},
        )

    # --- fleet -------------------------------------------------------------------------
    async def fleet(request: Request) -> Response:
        s = await require(request)
        if not isinstance(s, Session):
            return s
        now = clock()

        def load() -> tuple[list[central.DeviceHealth], list[str] | None]:
            with db() as conn:
                venues = scope(conn, s)
                devices = central.fleet_health(
                    conn,
                    now,
                    offline_after_s=st.offline_after_s,
                    stale_after_s=st.stale_after_s,
                    venues=venues,
                )
            return devices, venues

        devices, venues = await run_in_threadpool(load)
        rows = []
        for d in devices:
            seen_en, _ = _age_text(max(now - d.last_heartbeat, timedelta(0)))
            data_en = (
                "unknown"
                if d.bundle_age_s is None
                else _age_text(timedelta(seconds=max(d.bundle_age_s, 0)))[0]
            )
            flags = [f for f, on in (("offline", d.offline), ("stale", d.stale)) if on]
            rows.append({"d": d, "seen": seen_en, "data_age": data_en, "flags": flags})
        return render(
            request,
            "central_fleet.html",
            session=s,
            rows=rows,
            all_venues=venues is None,
            venues=venues or [],
            n_offline=sum(d.offline for d in devices),
            n_stale=sum(d.stale for d in devices),
            n_faults=sum(bool(d.faults) for d in devices),
            backlog=sum(d.outbox_backlog for d in devices),
            offline_min=int(st.offline_after_s // 60),
            stale_h=int(st.stale_after_s // 3600),
            now=_utc(now),
            utc=_utc,
        )

    # --- audit (auditors) ---------------------------------------------------------------
    async def audit_view(request: Request) -> Response:
        s = await require(request)
        if not isinstance(s, Session):
            return s
        if s.role != "auditor":
            return render(request, "forbidden.html", 403, session=s)

        def load() -> dict[str, Any]:
            with db() as conn:
                n, bad = central.verify_audit(conn)
                return {"entries": central.audit_entries(conn), "n": n, "bad": bad}

        return render(
            request, "central_audit.html", session=s, utc=_utc, **await run_in_threadpool(load)
        )

    async def healthz(_request: Request) -> Response:
        def ping() -> bool:
            try:
                with db() as conn:
                    conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                return False

        ok = await run_in_threadpool(ping)
        return JSONResponse({"ok": ok, "database": ok}, status_code=200 if ok else 503)

    async def db_down(_request: Request, exc: Exception) -> Response:
        first = str(exc).strip().splitlines()[:1]
        return PlainTextResponse(
            f"central database unavailable: {first[0] if first else type(exc).__name__}",
            status_code=503,
        )

    return Starlette(
        routes=[
            Route("/", root),
            Route("/login", auth.login_page, methods=["GET"]),
            Route("/login", auth.login, methods=["POST"]),
            Route("/logout", auth.logout, methods=["POST"]),
            Route("/reports", reports),
            Route("/reports/export", export, methods=["POST"]),
            Route("/fleet", fleet),
            Route("/audit", audit_view),
            *central_city.routes(
                central_city.Deps(require, render, db, clock, st.offline_after_s, MESSAGE_TABLE)
            ),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=st.allowed_hosts, www_redirect=False),
            Middleware(SecurityHeaders),
        ],
        exception_handlers={psycopg.OperationalError: db_down, UserBusy: busy_handler},
    )


def serve(dsn: str, users_path: str | Path, host: str = "127.0.0.1", port: int = 8090) -> int:
    """Serve the central pages until SIGINT/SIGTERM (``sentinel central web``)."""
    from sentinel.errors import FleetError
    from sentinel.web.server import BackgroundServer

    settings = CentralSettings(allowed_hosts=["127.0.0.1", "localhost", host])
    try:
        app = create_central_app(dsn, users_path, settings)
    except psycopg.OperationalError as exc:
        raise FleetError(f"cannot connect to PostgreSQL: {str(exc).strip()}") from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with BackgroundServer(app, host, port) as server:
        print(f"serving {server.url}/login (Ctrl-C stops)", flush=True)
        stop.wait()
    return 0
