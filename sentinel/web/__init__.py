"""Kiosk page, manager reports, auditor view and login, served by the sentinel itself.

Public names live in their modules (``sentinel.web.app.create_app``,
``sentinel.web.app.WebContext``, ``sentinel.web.hub.EventHub``,
``sentinel.web.users.UserStore``, ``sentinel.web.server.BackgroundServer``); this package
imports nothing heavy, so ``sentinel --help`` and a daemon without the web part stay fast.
"""
