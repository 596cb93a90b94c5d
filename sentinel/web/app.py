"""The web app: kiosk page with a live feed, login, reports, CSV export, auditor view.

Starlette (routing, forms, streaming responses) with Jinja2 templates that autoescape
everything; no JavaScript framework, no remote assets.  Blocking work (scrypt, SQLite)
runs in the thread pool.  Sign-in, sessions and CSRF cookies are ``sentinel.web.auth``'s.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentinel.config import Config
from sentinel.journal.audit import AuditLog, open_audit
from sentinel.policy import TrustState
from sentinel.reasons import MESSAGES, ReasonCode, is_admit
from sentinel.web import charts
from sentinel.web.auth import CookieAuth, busy_handler, csrf_ok, csrf_refused
from sentinel.web.cues import prompts_installed
from sentinel.web.data import Filter, ReportData, counts
from sentinel.web.hub import EventHub
from sentinel.web.users import Session, UserBusy, UserStore

HERE = Path(__file__).parent
SESSION_COOKIE = "sentinel_session"
CSRF_COOKIE = "sentinel_csrf"
TABLE_ROWS = 500  # rows shown on the page; the export has them all
MAX_STREAMS = 32  # live kiosk event streams at once (a kiosk needs one)

# Fixed override reasons: a menu, not free text, so no personal data reaches the logs.
OVERRIDE_REASONS: dict[str, tuple[str, str]] = {
    "paper": ("Paper certificate checked by staff", "工作人员已核验纸质证明"),
    "staff": ("Staff member or supplier", "工作人员或供应商"),
    "device": ("Device problem", "设备故障"),
    "emergency": ("Emergency", "紧急情况"),
}
ROLE_HOME = {"manager": "/reports", "auditor": "/audit", "staff": "/home"}
REPORT_ROLES = ("manager", "auditor")
AUDIT_ROLES = ("auditor",)
_ALARM_TEXT = {
    ReasonCode.DOOR_FORCED.value: MESSAGES[ReasonCode.DOOR_FORCED],
    ReasonCode.DOOR_HELD_OPEN.value: MESSAGES[ReasonCode.DOOR_HELD_OPEN],
    ReasonCode.DISK_FULL.value: MESSAGES[ReasonCode.DISK_FULL],
}
REFUSAL_CODES = [r.value for r in ReasonCode if not is_admit(r)]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class WebContext:
    """Everything the pages need, injected (the daemon passes its parts; tests fakes)."""

    config: Config
    users: UserStore
    data: ReportData
    hub: EventHub = field(default_factory=EventHub)
    trust_state: Callable[[], TrustState] | None = None
    # Staff "open once" for a reason key: opens the gate, journals and audits it.
    override: Callable[[str], object] | None = None
    audit: Callable[[], AuditLog] | None = None
    clock: Callable[[], datetime] = _now

    @classmethod
    def for_config(cls, config: Config, **kw: Any) -> WebContext:
        data_dir = Path(config.data_dir)
        users = UserStore(
            data_dir / "users.db",
            clock=kw.get("clock", _now),
            max_failures=config.web.max_failures,
            lockout=timedelta(minutes=config.web.lockout_minutes),
        )
        kw.setdefault("audit", lambda: open_audit(data_dir))
        data = ReportData(
            data_dir / "journal.db",
            journal=kw.pop("journal", None),
            retention_days=config.retention.retention_days,
        )
        return cls(config, users, data, **kw)


# --- helpers -------------------------------------------------------------------------


def _age_text(age: timedelta) -> tuple[str, str]:
    minutes = int(age.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min", f"{minutes} 分钟"
    if minutes < 48 * 60:
        return f"{minutes // 60} h", f"{minutes // 60} 小时"
    return f"{minutes // 1440} days", f"{minutes // 1440} 天"


def kiosk_status(ctx: WebContext) -> dict[str, Any]:
    """Data freshness and device warnings for the kiosk banners."""
    st = ctx.trust_state() if ctx.trust_state else None
    out: dict[str, Any] = {"stale": False}
    if st is None or st.updated_at is None:
        out["fresh_en"], out["fresh_zh"] = "Local trust list", "本地信任列表"
    else:
        age = ctx.clock() - st.updated_at
        en, zh = _age_text(max(age, timedelta(0)))
        out["fresh_en"], out["fresh_zh"] = f"Data updated {en} ago", f"数据更新于 {zh} 前"
        out["stale"] = age > st.max_age
    dev = ctx.hub.device
    out["camera_fault"] = dev.camera_fault
    out["alarm"] = dev.alarm
    out["alarm_en"], out["alarm_zh"] = _ALARM_TEXT.get(dev.alarm, ("", ""))
    return out


# Report dates outside this range are refused (year 9999 + 1 day overflowed into a 500).
MIN_DATE, MAX_DATE = date(2000, 1, 1), date(2100, 12, 31)
BAD_DATES = f"Dates must be YYYY-MM-DD between {MIN_DATE} and {MAX_DATE}."


def _parse_date(value: str | None, default: date) -> date:
    if not value:
        return default
    d = date.fromisoformat(value)
    if not MIN_DATE <= d <= MAX_DATE:
        raise ValueError("date out of range")
    return d


def filter_status(error: str) -> int:
    """HTTP status of a page whose filter gave ``error``: 400 for dates it could not use."""
    return 400 if error == BAD_DATES else 200


def parse_filter(params: Any, today: date) -> tuple[Filter, dict[str, str], str]:
    """A Filter from query/form parameters (dates inclusive, UTC), the echo, an error."""
    error = ""
    try:
        start_d = _parse_date(params.get("start"), today - timedelta(days=6))
        end_d = _parse_date(params.get("end"), today)
    except (ValueError, TypeError):
        start_d, end_d, error = today - timedelta(days=6), today, BAD_DATES
    if end_d < start_d:
        start_d, end_d, error = end_d, start_d, "Start was after end; swapped."
    if (end_d - start_d).days > 400:
        start_d, error = end_d - timedelta(days=400), "Ranges are capped at 400 days."
    gate = (params.get("gate") or "").strip()[:64] or None
    reason = params.get("reason") or None
    if reason is not None and reason not in REFUSAL_CODES:
        reason, error = None, "Unknown reason ignored."
    f = Filter(
        datetime(start_d.year, start_d.month, start_d.day, tzinfo=UTC),
        datetime(end_d.year, end_d.month, end_d.day, tzinfo=UTC) + timedelta(days=1),
        gate,
        reason,
    )
    echo = {
        "start": start_d.isoformat(),
        "end": end_d.isoformat(),
        "gate": gate or "",
        "reason": reason or "",
    }
    return f, echo, error


class SecurityHeaders:
    """CSP without inline script or style, no framing, no referrer, no sniffing, and
    ``Cache-Control: no-store`` on everything but static assets."""

    CSP = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        path = str(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", self.CSP.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                # Pages and exports can hold personal data: never kept by a browser or
                # proxy past the retention promise (static assets may be cached).
                if not path.startswith("/static/") and not any(
                    k.lower() == b"cache-control" for k, _ in headers
                ):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- the app -------------------------------------------------------------------------


def create_app(ctx: WebContext) -> Starlette:
    """The Starlette app for ``ctx``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    templates = Jinja2Templates(env=env)
    cfg = ctx.config
    ctx.hub.status_fn = lambda: kiosk_status(ctx)

    def render(request: Request, template: str, code: int = 200, **context: Any) -> Response:
        context.setdefault("session", None)
        context.setdefault("venue", cfg.venue)
        return templates.TemplateResponse(request, template, context, status_code=code)

    def audit(kind: str, details: dict[str, Any]) -> None:
        if ctx.audit is None:
            return
        with ctx.audit() as log:
            log.append(kind, details, now=ctx.clock())

    auth = CookieAuth(
        ctx.users,
        SESSION_COOKIE,
        CSRF_COOKIE,
        cfg.web.session_minutes,
        render,
        audit,
        landing=lambda role: ROLE_HOME.get(role, "/home"),
    )
    current, require = auth.current, auth.require

    # --- kiosk -----------------------------------------------------------------------
    async def kiosk(request: Request) -> Response:
        tok, fresh = auth.anon_csrf(request)
        has_pin = await run_in_threadpool(ctx.users.has_pin)
        resp = render(
            request,
            "kiosk.html",
            csrf=tok,
            status=kiosk_status(ctx),
            result_s=cfg.web.kiosk_result_s,
            web=cfg.web,
            prompts=cfg.web.spoken_prompts and prompts_installed(),
            override=has_pin and ctx.override is not None,
            reasons=OVERRIDE_REASONS,
        )
        if fresh:
            auth.set_anon_csrf(resp, tok)
        return resp

    async def kiosk_events(request: Request) -> Response:
        if ctx.hub.subscribers >= MAX_STREAMS:  # each stream lives for ever (D5)
            return PlainTextResponse("Too many live streams.", 503, {"Retry-After": "5"})

        async def stream() -> AsyncIterator[str]:
            yield "retry: 1000\n\n"
            async for name, data in ctx.hub.subscribe(cfg.web.status_interval_s):
                yield f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def kiosk_override(request: Request) -> Response:
        form = await request.form()
        if not csrf_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
            return JSONResponse({"ok": False, "error": "csrf"}, status_code=403)
        if ctx.override is None:
            return JSONResponse({"ok": False, "error": "unavailable"}, status_code=503)
        reason = form.get("reason")
        if reason not in OVERRIDE_REASONS:
            return JSONResponse({"ok": False, "error": "reason"}, status_code=400)
        pin = form.get("pin")
        result, wait_s = await run_in_threadpool(
            ctx.users.check_pin_detail, pin if isinstance(pin, str) else ""
        )
        if result == "locked":  # lock-out or the growing delay between attempts (D1)
            return JSONResponse(
                {"ok": False, "error": result, "retry_after_s": wait_s},
                status_code=429,
                headers={"Retry-After": str(max(1, wait_s))},
            )
        if result != "ok":
            return JSONResponse({"ok": False, "error": result}, status_code=403)

        await run_in_threadpool(ctx.override, reason)
        return JSONResponse({"ok": True})

    # --- login: auth.login_page, auth.login, auth.logout -------------------------------
    async def home(request: Request) -> Response:
        s = await current(request)
        if s is None:
            return RedirectResponse("/login", status_code=303)
        if s.role != "staff":
            return RedirectResponse(ROLE_HOME[s.role], status_code=303)
        return render(request, "home.html", session=s)

    # --- reports -------------------------------------------------------------------------
    async def reports(request: Request) -> Response:
        s = await require(request, REPORT_ROLES)
        if not isinstance(s, Session):
            return s
        f, echo, error = parse_filter(request.query_params, ctx.clock().date())

        def load() -> dict[str, Any]:
            rows = ctx.data.refused(f)
            shown = rows[:TABLE_ROWS]
            return {
                "rows": shown,
                "personal": ctx.data.personal([str(r["event_id"]) for r in shown], ctx.clock()),
                "counts": counts(rows, f),
                "gates": ctx.data.gates(),
            }

        d = await run_in_threadpool(load)
        c = d["counts"]
        return render(
            request,
            "reports.html",
            filter_status(error),
            session=s,
            filter=echo,
            error=error,
            rows=d["rows"],
            personal=d["personal"],
            counts=c,
            chart=Markup(charts.bar_chart(c.by_bucket, c.bucket)),  # noqa: S704 (escaped)
            gates=d["gates"],
            reasons=REFUSAL_CODES,
            messages={r.value: MESSAGES[r] for r in ReasonCode},
            table_rows=TABLE_ROWS,
            retention_days=cfg.retention.retention_days,
        )

    async def export(request: Request) -> Response:
        s = await require(request, REPORT_ROLES)
        if not isinstance(s, Session):
            return s
        form = await request.form()
        if not csrf_ok(s.csrf, form.get("csrf")):
            return csrf_refused()
        f, echo, error = parse_filter(form, ctx.clock().date())
        if filter_status(error) != 200:
            return PlainTextResponse(error, status_code=400)

        def build() -> str:
            rows = ctx.data.refused(f)
            audit("export", {"user": s.name, "rows": len(rows), "filter": echo})
            return charts.to_csv(rows, {r.value: MESSAGES[r] for r in ReasonCode})

        body = await run_in_threadpool(build)
        fname = f"refused_{echo['start']}_{echo['end']}.csv"
        return Response(
            body.encode("utf-8-sig"),  # BOM: spreadsheets then read the Chinese text right
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{fname}"'},
        )

    # --- auditor -------------------------------------------------------------------------
    async def audit_view(request: Request) -> Response:
        s = await require(request, AUDIT_ROLES)
        if not isinstance(s, Session):
            return s
        info = await run_in_threadpool(audit_state, ctx)
        return render(request, "audit.html", session=s, **info)

    async def healthz(_request: Request) -> Response:
        return JSONResponse({"ok": True, "kiosk_clients": ctx.hub.subscribers})

    async def root(_request: Request) -> Response:
        return RedirectResponse("/kiosk", status_code=303)

    hosts = [*cfg.web.allowed_hosts, cfg.web.host]
    return Starlette(
        routes=[
            Route("/", root),
            Route("/kiosk", kiosk),
            Route("/kiosk/events", kiosk_events),
            Route("/kiosk/override", kiosk_override, methods=["POST"]),
            Route("/login", auth.login_page, methods=["GET"]),
            Route("/login", auth.login, methods=["POST"]),
            Route("/logout", auth.logout, methods=["POST"]),
            Route("/home", home),
            Route("/reports", reports),
            Route("/reports/export", export, methods=["POST"]),
            Route("/audit", audit_view),
            Route("/healthz", healthz),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts, www_redirect=False),
            Middleware(SecurityHeaders),
        ],
        exception_handlers={UserBusy: busy_handler},
    )


def audit_state(ctx: WebContext) -> dict[str, Any]:
    """The auditor's view: audit-chain length and verification, retention state."""
    out: dict[str, Any] = {"entries": 0, "verify": None, "verify_detail": "", "recent": []}
    if ctx.audit is not None:
        with ctx.audit() as log:
            entries = log.entries()
            out["entries"] = len(entries)
            out["recent"] = entries[-20:][::-1]
            if hasattr(log, "verify"):
                try:
                    report = log.verify()
                    out["verify"] = True
                    fp = getattr(report, "key_fingerprint", "")
                    out["verify_detail"] = f"device key {fp}" if fp else ""
                except Exception as exc:  # AuditError names the first bad entry
                    out["verify"], out["verify_detail"] = False, str(exc)
    r = ctx.config.retention
    now = ctx.clock()
    summary = ctx.data.summary()
    out["retention_days"] = r.retention_days
    out["aggregate_days"] = r.aggregate_days
    out["journal"] = summary
    out["over_aggregate"] = ctx.data.count_before(now - timedelta(days=r.aggregate_days))
    out["over_retention"] = ctx.data.count_before(now - timedelta(days=r.retention_days))
    return out
