"""Sign-in, sign-out, sessions and CSRF cookies, shared by the device and central apps.

Each app builds one ``CookieAuth`` with only what differs: cookie names, the user store,
session length, where a role lands after sign-in, its own render and audit functions,
and (central) the roles allowed to sign in at all.  Every form carries a CSRF token: the
session's own once signed in, otherwise a random cookie echoed by the form (double
submit, SameSite=Strict).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from sentinel.web.users import Session, UserBusy, UserStore

CSRF_REFUSED = "CSRF token missing or wrong"
MIN_CSRF_CHARS = 32  # token_urlsafe(32) gives 43; anything shorter was not made by us


def csrf_ok(expected: str | None, given: Any) -> bool:
    """Whether the form's token ``given`` matches ``expected`` (constant time)."""
    return bool(expected) and isinstance(given, str) and hmac.compare_digest(expected, given)


def csrf_refused() -> Response:
    return PlainTextResponse(CSRF_REFUSED, status_code=403)


def busy_response() -> Response:
    """users.db contention: 429 with Retry-After (never a 500)."""
    return PlainTextResponse("Busy; try again.", status_code=429, headers={"Retry-After": "1"})


async def busy_handler(_request: Request, _exc: Exception) -> Response:
    """Starlette exception handler for ``UserBusy`` raised anywhere in a page."""
    return busy_response()


def _wait_text(seconds: int) -> str:
    if seconds < 120:
        return f"{max(1, seconds)} s"
    return f"{-(-seconds // 60)} min"


@dataclass(frozen=True, slots=True)
class CookieAuth:
    """The login/logout handlers and cookie handling of one app."""

    users: UserStore
    session_cookie: str
    csrf_cookie: str
    session_minutes: float
    render: Callable[..., Response]  # render(request, template, code=200, **context)
    audit: Callable[[str, dict[str, Any]], None]  # blocking; run in the thread pool
    landing: Callable[[str], str]  # role -> page after sign-in
    # Roles that may sign in at all (None: every role); others get ``role_refused``.
    roles: tuple[str, ...] | None = None
    role_refused: str = "The {role} role cannot use these pages."

    def anon_csrf(self, request: Request) -> tuple[str, bool]:
        """The pre-login CSRF token (cookie), and whether it must be set now."""
        tok = self._anon_token(request)
        if tok is not None:
            return tok, False
        return secrets.token_urlsafe(32), True

    def _anon_token(self, request: Request) -> str | None:
        """The pre-login CSRF cookie if it can be ours: a short one was set by someone else
        (cookie tossing) and is worth nothing, at the form and at the login alike."""
        tok = request.cookies.get(self.csrf_cookie)
        return tok if tok and len(tok) >= MIN_CSRF_CHARS else None

    def set_anon_csrf(self, resp: Response, tok: str) -> None:
        resp.set_cookie(self.csrf_cookie, tok, httponly=True, samesite="strict", path="/")

    async def current(self, request: Request) -> Session | None:
        return await run_in_threadpool(self.users.session, request.cookies.get(self.session_cookie))

    async def require(self, request: Request, roles: tuple[str, ...]) -> Session | Response:
        """The session if its role is in ``roles``; else the login redirect or a 403."""
        s = await self.current(request)
        if s is None:
            return RedirectResponse("/login", status_code=303)
        if s.role not in roles:
            return self.render(request, "forbidden.html", 403, session=s)
        return s

    async def login_page(self, request: Request) -> Response:
        tok, fresh = self.anon_csrf(request)
        resp = self.render(request, "login.html", csrf=tok, error="", name="")
        if fresh:
            self.set_anon_csrf(resp, tok)
        return resp

    async def login(self, request: Request) -> Response:
        form = await request.form()
        tok = self._anon_token(request)
        if not csrf_ok(tok, form.get("csrf")):
            return csrf_refused()
        name = str(form.get("name") or "")[:64]
        password = str(form.get("password") or "")[:1024]
        try:
            res = await run_in_threadpool(self.users.login, name, password, self.session_minutes)
        except UserBusy:  # users.db held by another writer past the busy timeout
            return busy_response()
        refused_role = (
            self.roles is not None and res.token is not None and res.role not in self.roles
        )
        if refused_role:
            await run_in_threadpool(self.users.logout, res.token or "")
        result = "role" if refused_role else (res.reason or "ok")
        # Unknown names are not recorded: people type passwords into the name field.
        await run_in_threadpool(
            self.audit, "login", {"user": name if res.known_user else None, "result": result}
        )
        if refused_role:
            msg = self.role_refused.format(role=res.role)
            return self.render(request, "login.html", 403, csrf=tok, error=msg, name=name)
        if res.token is None and res.reason == "locked":
            msg = f"Too many failed attempts; try again in {_wait_text(res.retry_after_s)}."
            resp = self.render(request, "login.html", 429, csrf=tok, error=msg, name=name)
            resp.headers["Retry-After"] = str(max(1, res.retry_after_s))
            return resp
        if res.token is None:
            msg = "Wrong user name or password."
            return self.render(request, "login.html", 401, csrf=tok, error=msg, name=name)
        resp = RedirectResponse(self.landing(res.role), status_code=303)
        resp.set_cookie(
            self.session_cookie,
            res.token,
            max_age=int(self.session_minutes * 60),
            httponly=True,
            samesite="strict",
            path="/",
        )
        return resp

    async def logout(self, request: Request) -> Response:
        form = await request.form()
        s = await self.current(request)
        if s is not None:
            if not csrf_ok(s.csrf, form.get("csrf")):
                return csrf_refused()
            await run_in_threadpool(self.users.logout, request.cookies.get(self.session_cookie, ""))
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(self.session_cookie, path="/")
        return resp
