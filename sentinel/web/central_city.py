"""Central pages for the city levels and live alerts (mounted by ``central_app``).

* ``/city?level=L&area=A&days=N``: one area's totals from the hourly roll-ups and one row
  per child area (drill-down), with devices and offline devices per child.  Without an
  area: the user's own roots (their office scopes; an auditor: every city).  An area
  outside the user's subtree answers 403: the SQL that reads the numbers decides
  (``city.area_counts`` / ``drill_down`` return nothing for it).
* ``/alerts``: open and acknowledged alerts in the user's venues, newest first.
  ``/static/alerts.js`` polls ``/alerts/feed?after=ID`` every second and adds new rows
  (built with ``textContent`` from a ``<template>``: no HTML from data).  Offices
  acknowledge and close with a note (CSRF-checked forms); auditors read only.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from sentinel.errors import FleetError
from sentinel.fleet import alerts, city
from sentinel.web.auth import csrf_ok, csrf_refused
from sentinel.web.users import Session

MAX_DAYS = 366


@dataclass(frozen=True, slots=True)
class Deps:
    require: Callable[[Request], Any]  # async: Session | Response
    render: Callable[..., Response]
    db: Callable[[], AbstractContextManager[psycopg.Connection[Any]]]
    clock: Callable[[], datetime]
    offline_after_s: float
    messages: dict[str, tuple[str, str]]


def _user(s: Session) -> str | None:
    """None (every area) for auditors; the user name for everyone else."""
    return None if s.role == "auditor" else s.name


def _window(params: Any, now: datetime) -> tuple[datetime, datetime, int]:
    try:
        days = int(str(params.get("days") or "7"))
    except ValueError:
        days = 7
    days = min(max(days, 1), MAX_DAYS)
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return end - timedelta(days=days), end, days


def _alert_json(a: alerts.Alert, messages: dict[str, tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": a.id,
        "venue": a.venue,
        "gate": a.gate,
        "time": a.time.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "reason": a.reason,
        "message": " · ".join(messages.get(a.reason, ())),
        "street": a.street,
        "state": a.state,
    }


def routes(d: Deps) -> list[Route]:
    async def city_page(request: Request) -> Response:
        s = await d.require(request)
        if not isinstance(s, Session):
            return s
        start, end, days = _window(request.query_params, d.clock())
        raw_level = str(request.query_params.get("level") or "")
        area = str(request.query_params.get("area") or "")[:200]
        user = _user(s)
        offline_before = d.clock() - timedelta(seconds=d.offline_after_s)

        def load() -> dict[str, Any] | None:
            with d.db() as conn:
                if not area:
                    if user is None:
                        roots = [
                            (0, r[0])
                            for r in conn.execute("SELECT id FROM areas WHERE level = 0 ORDER BY 1")
                        ]
                    else:
                        roots = city.scopes(conn, user)
                    counts = [city.area_counts(conn, user, lv, a, start, end) for lv, a in roots]
                    return {"here": None, "chain": [], "rows": [c for c in counts if c]}
                level = city.level_index(raw_level) if not raw_level.isdigit() else int(raw_level)
                if not 0 <= level <= 5:
                    return None
                here = city.area_counts(conn, user, level, area, start, end)
                if here is None:
                    return None
                chain = [
                    (lv, a, user is None or bool(city.area_counts(conn, user, lv, a, end, end)))
                    for lv, a in city.parent_chain(conn, level, area)
                ]
                rows = city.drill_down(conn, user, level, area, start, end, offline_before)
                return {"here": here, "chain": chain, "rows": rows}

        try:
            data = await run_in_threadpool(load)
        except FleetError:
            data = None
        if data is None:
            return d.render(request, "forbidden.html", 403, session=s)
        return d.render(
            request,
            "central_city.html",
            session=s,
            days=days,
            start=start,
            end=end,
            levels=city.LEVELS,
            titles=city.LEVEL_TITLES,
            messages=d.messages,
            **data,
        )

    async def alerts_page(request: Request) -> Response:
        s = await d.require(request)
        if not isinstance(s, Session):
            return s
        return await _alerts(request, s, "", 200)

    async def _alerts(request: Request, s: Session, error: str, code: int) -> Response:
        def load() -> tuple[list[alerts.Alert], list[str]]:
            with d.db() as conn:
                return alerts.list_alerts(conn, _user(s)), alerts.marked_kinds(conn)

        rows, kinds = await run_in_threadpool(load)
        return d.render(
            request,
            "central_alerts.html",
            code,
            session=s,
            rows=rows,
            kinds=kinds,
            error=error,
            can_act=s.role != "auditor",
            messages=d.messages,
            last_id=max((a.id for a in rows), default=0),
            utc=lambda t: t.astimezone(UTC),
        )

    async def feed(request: Request) -> Response:
        s = await d.require(request)
        if not isinstance(s, Session):
            return JSONResponse({"error": "sign in"}, status_code=401)
        try:
            after = int(str(request.query_params.get("after") or "0"))
        except ValueError:
            after = 0

        def load() -> list[alerts.Alert]:
            with d.db() as conn:
                return alerts.list_alerts(conn, _user(s), states=("open",), limit=100)

        new = [a for a in await run_in_threadpool(load) if a.id > after]
        return JSONResponse({"alerts": [_alert_json(a, d.messages) for a in reversed(new)]})

    async def act(request: Request) -> Response:
        s = await d.require(request)
        if not isinstance(s, Session):
            return s
        form = await request.form()
        if not csrf_ok(s.csrf, form.get("csrf")):
            return csrf_refused()
        if s.role == "auditor":
            return d.render(request, "forbidden.html", 403, session=s)
        action = request.path_params["action"]
        try:
            alert_id = int(request.path_params["alert_id"])
        except ValueError:
            return await _alerts(request, s, "No such alert.", 404)

        def run() -> bool:
            with d.db() as conn:
                return alerts.act(conn, s.name, alert_id, action, str(form.get("note") or ""))

        try:
            done = await run_in_threadpool(run)
        except FleetError as exc:
            return await _alerts(request, s, str(exc).capitalize() + ".", 400)
        if not done:
            return await _alerts(
                request, s, "That alert is not open in your area (or already done).", 409
            )
        return RedirectResponse("/alerts", status_code=303)

    return [
        Route("/city", city_page),
        Route("/alerts", alerts_page),
        Route("/alerts/feed", feed),
        Route("/alerts/{alert_id}/{action:str}", act, methods=["POST"]),
    ]
