"""Sessions and cookies as an attacker sees them, on a real server on 127.0.0.1.

Sign-out ends the session on the server (a copied cookie stops working), cookie flags
(HttpOnly, SameSite=Strict, a max-age that is the session's), and the pre-login CSRF
token: never empty, never short, never attacker-chosen.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from sentinel.config import Config, WebConfig, replace
from sentinel.journal import Journal
from sentinel.web.app import CSRF_COOKIE, SESSION_COOKIE, WebContext, create_app
from sentinel.web.server import BackgroundServer
from sentinel.web.users import UserStore

NOW = datetime(2022, 5, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
SESSION_MINUTES = 30


@pytest.fixture(scope="module")
def users_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.db"
    store = UserStore(path)
    store.add("mia", "manager", PASSWORD)
    store.add("sam", "staff", PASSWORD)
    return path


@pytest.fixture
def server(tmp_path: Path, users_template: Path):
    cfg = replace(Config(), data_dir=str(tmp_path), web=WebConfig(session_minutes=SESSION_MINUTES))
    Journal(tmp_path / "journal.db", clock=lambda: NOW).close()
    shutil.copyfile(users_template, tmp_path / "users.db")
    ctx = WebContext.for_config(cfg, clock=lambda: NOW, override=lambda _r: None)
    srv = BackgroundServer(create_app(ctx)).start()
    yield srv.url
    ctx.hub.close()
    srv.stop()


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def _login(client: httpx.Client) -> httpx.Response:
    token = _csrf(client.get("/login").text)
    return client.post("/login", data={"csrf": token, "name": "mia", "password": PASSWORD})


def _set_cookie(resp: httpx.Response, name: str) -> str:
    for header in resp.headers.get_list("set-cookie"):
        if header.startswith(name + "="):
            return header
    raise AssertionError(f"no Set-Cookie for {name}: {resp.headers}")


def test_sign_out_ends_the_session_on_the_server(server: str) -> None:
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as client:
        r = _login(client)
        assert r.status_code == 303
        stolen = client.cookies.get(SESSION_COOKIE)
        assert stolen
        page = client.get("/reports")
        assert page.status_code == 200
        out = client.post("/logout", data={"csrf": _csrf(page.text)})
        # the browser is sent to the login page and told to drop its cookie
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert re.search(
            r"max-age=0|expires=thu, 01 jan 1970", _set_cookie(out, SESSION_COOKIE).lower()
        )
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as thief:
        thief.cookies.set(SESSION_COOKIE, stolen)
        r = thief.get("/reports")
        assert r.status_code in (302, 303) and "/login" in r.headers["location"]


def test_session_cookie_flags(server: str) -> None:
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as client:
        header = _set_cookie(_login(client), SESSION_COOKIE).lower()
    assert "httponly" in header
    assert "samesite=strict" in header
    assert re.search(r"(^|; )path=/(;|$)", header)  # every page, one cookie
    m = re.search(r"max-age=(\d+)", header)
    assert m and int(m.group(1)) == SESSION_MINUTES * 60


def test_pre_login_csrf_cookie_is_fresh_long_and_httponly(server: str) -> None:
    """... and SameSite=Strict, as the session cookie: a page of another site that posts
    the login form (login CSRF) does not send it."""
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as client:
        r = client.get("/login")
        header = _set_cookie(r, CSRF_COOKIE)
        token = client.cookies.get(CSRF_COOKIE)
        assert token and len(token) >= 32 and "httponly" in header.lower()
        assert "samesite=strict" in header.lower()
        assert _csrf(r.text) == token


@pytest.mark.parametrize("tossed", ["", "abc", "x" * 31])
def test_short_or_empty_csrf_cookie_is_not_accepted(server: str, tossed: str) -> None:
    """Cookie tossing: an attacker who can set a short (or empty) CSRF cookie on the
    device's origin and post the same value must not get a login through."""
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as client:
        client.cookies.set(CSRF_COOKIE, tossed)
        r = client.post("/login", data={"csrf": tossed, "name": "mia", "password": PASSWORD})
        assert r.status_code == 403
        assert r.text == "CSRF token missing or wrong"  # says why, not a bare 403
        assert client.cookies.get(SESSION_COOKIE) is None
        page = client.get("/login")  # the page replaces a short token with a fresh one
        assert len(_csrf(page.text)) >= 32


def test_a_refused_role_gets_no_session(server: str) -> None:
    """Staff may not sign in to reports: no session cookie, and nothing left on the server."""
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as client:
        token = _csrf(client.get("/login").text)
        r = client.post("/login", data={"csrf": token, "name": "sam", "password": PASSWORD})
        if r.status_code == 303:  # staff has a home page on the device: that is allowed
            assert client.get(r.headers["location"]).status_code == 200
            return
        assert r.status_code == 403
        assert client.cookies.get(SESSION_COOKIE) is None


def test_pre_login_csrf_token_is_kept_while_it_is_valid(server: str) -> None:
    """A second login page (another tab, a reload) keeps the same token: a form opened
    earlier still signs in."""
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as client:
        first = _csrf(client.get("/login").text)
        again = client.get("/login")
        assert _csrf(again.text) == first
        assert not any(
            h.startswith(CSRF_COOKIE + "=") for h in again.headers.get_list("set-cookie")
        )
        r = client.post("/login", data={"csrf": first, "name": "mia", "password": PASSWORD})
        assert r.status_code == 303


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "1 s"), (1, "1 s"), (59, "59 s"), (119, "119 s"), (120, "2 min"), (121, "3 min"),
     (900, "15 min"), (901, "16 min")],
)  # fmt: skip
def test_the_lockout_wait_is_rounded_up_never_down(seconds: int, text: str) -> None:
    """The lock-out message must not send a user back before the lock ends: seconds
    below two minutes, whole minutes rounded up above."""
    from sentinel.web.auth import _wait_text

    assert _wait_text(seconds) == text


def test_a_wrong_password_page_says_so_and_its_form_signs_in_next_time(server: str) -> None:
    """The 401 page shows the refusal, keeps the name, and its form carries the CSRF token
    the next attempt needs (not the message in its place)."""
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as client:
        token = _csrf(client.get("/login").text)
        r = client.post("/login", data={"csrf": token, "name": "mia", "password": "nope"})
        assert r.status_code == 401
        assert "Wrong user name or password." in r.text and 'value="mia"' in r.text
        again = _csrf(r.text)
        assert again == token
        ok = client.post("/login", data={"csrf": again, "name": "mia", "password": PASSWORD})
        assert ok.status_code == 303


def test_signing_out_without_a_session_goes_to_the_login_page(server: str) -> None:
    """A second tab's sign-out, after the first has ended the session: no error, the
    login page."""
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as client:
        r = client.post("/logout", data={"csrf": "whatever"})
        assert r.status_code == 303 and r.headers["location"] == "/login"


def test_a_login_form_without_a_name_or_password_field_is_refused_not_an_error(server: str) -> None:
    """A hand-made POST that leaves out a field: the wrong-password answer, never a 500."""
    with httpx.Client(base_url=server, follow_redirects=False, timeout=10) as client:
        token = _csrf(client.get("/login").text)
        for data in ({"csrf": token, "password": PASSWORD}, {"csrf": token, "name": "mia"}):
            r = client.post("/login", data=data)
            assert r.status_code == 401, (data, r.status_code)
