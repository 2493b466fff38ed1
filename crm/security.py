"""Sessions, scoping per request, timeouts and response headers."""
from __future__ import annotations

import time

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask_login import current_user, logout_user

from config import KNOWN_WEAK_SECRETS
from crm.core import scoping
from crm.extensions import db, login_manager


class InsecureConfigError(RuntimeError):
    """The app refuses to start with this configuration."""


def check_config(app: Flask) -> None:
    """Refuse to start in production with a missing, short or known SECRET_KEY."""
    if not app.config.get("REQUIRE_STRONG_SECRET"):
        return
    key = app.config.get("SECRET_KEY") or ""
    if not key:
        raise InsecureConfigError("SECRET_KEY is not set")
    if key in KNOWN_WEAK_SECRETS:
        raise InsecureConfigError("SECRET_KEY is a known example value")
    if len(key) < 32:
        raise InsecureConfigError("SECRET_KEY is shorter than 32 characters")


@login_manager.user_loader
def load_user(session_token: str):
    """Reload the user on every request by their current session token; a rotated token ends the session."""
    from crm.auth.models import User

    if not session_token or len(session_token) > 64:
        return None
    user = db.session.scalar(db.select(User).where(User.session_token == session_token))
    if user is None or not user.is_active:
        return None
    return user


def _enforce_session_age() -> bool:
    """Idle and absolute limits, checked on every request; True when the session was ended."""
    if not current_user.is_authenticated:
        return False
    now = time.time()
    cfg = current_app.config
    started = session.get("iat")
    last = session.get("seen")
    idle = cfg["SESSION_IDLE_MINUTES"] * 60
    absolute = cfg["SESSION_ABSOLUTE_HOURS"] * 3600
    if started is None or last is None or now - last > idle or now - started > absolute:
        logout_user()
        session.clear()
        return True
    session["seen"] = now
    return False


def register(app: Flask) -> None:
    """Install the per-request hooks."""

    @app.before_request
    def _scope_request():
        expired = _enforce_session_age()
        g._scope_token = scoping.set_scope(scoping.scope_for(current_user))
        if expired and request.endpoint not in ("auth.login", "static"):
            return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
        return None

    @app.teardown_request
    def _unscope(exc):
        token = g.pop("_scope_token", None)
        if token is not None:
            scoping.reset_scope(token)

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        )
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
        if app.config.get("SESSION_COOKIE_SECURE"):
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.endpoint != "static":
            resp.headers["Cache-Control"] = "no-store"
        return resp
