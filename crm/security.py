"""Cross-cutting security: the public-route allowlist, sessions and their limits, scoping per request,
response headers, production configuration checks and the security CLI commands.

Everything that decides "may this request go on" outside a single view lives here, so that
``docs/security.md`` can point at one place.
"""
from __future__ import annotations

import functools
import secrets
import time
import unicodedata

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask_login import current_user, login_user, logout_user, user_loaded_from_cookie
import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from config import KNOWN_WEAK_SECRETS
from crm.core import scoping
from crm.extensions import db, login_manager

#: Endpoints anyone may call without signing in. Every other endpoint must demand sign-in
#: (302 to the login page for pages, 401 for the API); tests/test_security_routes.py fails on any
#: endpoint that is neither. Keep this list short and give each entry a reason.
PUBLIC_ENDPOINTS: dict[str, str] = {
    "auth.login": "the sign-in form itself",
    "auth.set_language": "the language switch on the sign-in page (POST with CSRF; stores only the locale)",
    "static": "CSS, JS, fonts and images",
    "main.healthz": "liveness probe for the load balancer; answers {'status': 'ok'} and nothing else",
    "main.readyz": "readiness probe: {'status': 'ok'} or 503 {'status': 'unavailable'}; the reason only in the log",
    "main.favicon": "the browser's icon request",
    "api.openapi": "the API description (no data)",
    "api.docs": "the API description rendered for people (no data)",
}
#: Endpoint name prefixes that are public by design: the self-registration pages of a published
#: event, reached through an unguessable per-event token (``Event.public_token``), and a registrant's
#: confirmation and its QR image, behind the registration's unguessable check-in token.
PUBLIC_ENDPOINT_PREFIXES: tuple[str, ...] = ("events.public_",)

#: Blueprints whose endpoints authenticate with a bearer token instead of the session cookie, so
#: CSRF does not apply to them (a browser never sends the token by itself).
TOKEN_AUTH_BLUEPRINTS: tuple[str, ...] = ("api",)


def is_public_endpoint(endpoint: str | None) -> bool:
    """True when the endpoint is allowlisted as reachable without signing in."""
    if not endpoint:
        return False
    return endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_ENDPOINT_PREFIXES)


def now() -> float:
    """The clock of session limits (seconds since the epoch); tests monkeypatch this one function."""
    return time.time()


class InsecureConfigError(RuntimeError):
    """The app refuses to start with this configuration."""


def _weak_secret(key: str) -> str | None:
    if not key:
        return "is not set"
    if key.strip().casefold() in {k.casefold() for k in KNOWN_WEAK_SECRETS}:
        return "is a known example value"
    if len(key.encode("utf-8")) < 32:
        return "is shorter than 32 bytes"
    return None


def check_config(app: Flask) -> None:
    """Refuse to start in production with an unsafe configuration.

    Production (``REQUIRE_STRONG_SECRET``) needs: a SECRET_KEY (and every SECRET_KEY_FALLBACKS entry)
    that is set, at least 32 bytes and not a known example; TRUSTED_HOSTS; CSRF on; no debugger;
    secure cookies; and rate-limit counters in a store shared by all workers (not ``memory://``).
    """
    if not app.config.get("REQUIRE_STRONG_SECRET"):
        return
    problem = _weak_secret(app.config.get("SECRET_KEY") or "")
    if problem:
        raise InsecureConfigError(f"SECRET_KEY {problem}")
    for i, old in enumerate(app.config.get("SECRET_KEY_FALLBACKS") or []):
        problem = _weak_secret(old or "")
        if problem:
            raise InsecureConfigError(f"SECRET_KEY_FALLBACKS[{i}] {problem}")
    if not app.config.get("TRUSTED_HOSTS"):
        raise InsecureConfigError("TRUSTED_HOSTS is not set (comma-separated host names in the environment)")
    if app.config.get("DEBUG") or app.config.get("TESTING"):
        raise InsecureConfigError("DEBUG and TESTING must be off in production")
    if not app.config.get("WTF_CSRF_ENABLED", True):
        raise InsecureConfigError("WTF_CSRF_ENABLED must be on in production")
    if not (app.config.get("SESSION_COOKIE_SECURE") and app.config.get("REMEMBER_COOKIE_SECURE")):
        raise InsecureConfigError("session and remember cookies must be Secure in production")
    storage = (app.config.get("RATELIMIT_STORAGE_URI") or "memory://").strip()
    if app.config.get("RATELIMIT_ENABLED", True) and storage.startswith("memory://"):
        raise InsecureConfigError(
            "RATELIMIT_STORAGE_URI is memory:// (per worker); set a shared store such as redis://host:6379/0"
        )


def printable(text: str, limit: int = 200) -> str:
    """Text safe for one log line or audit field: control and format characters are escaped (\\x0d)."""
    out = []
    for ch in (text or "")[:limit]:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


# -- sessions ------------------------------------------------------------------------------------


@functools.cache
def _user_by_token():
    """The user of a session token, with the organisation every page's menu names: built once (the tenant scope's
    hook keeps its scoped form, crm.core.scoping)."""
    from crm.auth.models import User

    return db.select(User).where(User.session_token == sa.bindparam("token")).options(joinedload(User.org))


@login_manager.user_loader
def load_user(session_token: str):
    """Reload the user on every request by their current session token; a rotated token ends the session."""
    if not session_token or len(session_token) > 64:
        return None
    user = db.session.scalar(_user_by_token(), {"token": session_token})
    if user is None or not user.is_active:
        return None
    return user


@user_loaded_from_cookie.connect
def _remember_cookie_used(app, user=None, **_kw):
    g._from_remember_cookie = True


def start_session(user, *, remember: bool = False) -> None:
    """Sign a user in on a brand-new session (no key, no CSRF token survives from before)."""
    session.clear()
    login_user(user, remember=remember)
    t = now()
    session["iat"] = t
    session["seen"] = t
    # Without "keep me signed in", the cookie dies with the browser; with it, it is kept up to
    # PERMANENT_SESSION_LIFETIME (= the absolute limit). The limits below apply either way.
    session.permanent = bool(remember)


def renew_session(user) -> None:
    """A fresh session for the same sign-in (after a password change): new CSRF token, same start time."""
    started = session.get("iat", now())
    permanent = session.permanent
    session.clear()
    login_user(user)
    session["iat"] = started
    session["seen"] = now()
    session.permanent = permanent


def end_session() -> None:
    """Sign out this browser: the session is emptied and its remember-me cookie deleted."""
    logout_user()
    session.clear()
    session["_remember"] = "clear"  # Flask-Login deletes the remember cookie in after_request


def _enforce_session_age() -> bool:
    """Idle and absolute limits, checked on every request; True when the session was ended.

    A session restored from a remember-me cookie starts at the user's last password sign-in, so
    the absolute limit counts from there and a remember cookie cannot stretch it.
    """
    if not current_user.is_authenticated:
        return False
    t = now()
    cfg = current_app.config
    if session.get("iat") is None and g.pop("_from_remember_cookie", False):
        last_login = current_user.last_login_at
        session["iat"] = last_login.timestamp() if last_login else 0.0
        session["seen"] = t
    started = session.get("iat")
    last = session.get("seen")
    idle = cfg["SESSION_IDLE_MINUTES"] * 60
    absolute = cfg["SESSION_ABSOLUTE_HOURS"] * 3600
    if (not isinstance(started, (int, float)) or not isinstance(last, (int, float))
            or t - last > idle or t - started > absolute or started > t + 60):
        end_session()
        return True
    session["seen"] = t
    return False


# -- per-request hooks -----------------------------------------------------------------------------


def register(app: Flask) -> None:
    """Install the per-request hooks and the security commands."""
    hops = int(app.config.get("PROXY_FIX_HOPS") or 0)
    if hops > 0:
        from werkzeug.middleware.proxy_fix import ProxyFix

        # Only the last `hops` X-Forwarded-For entries (added by our own proxies) are trusted.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)

    import crm.core.security_commands  # noqa: F401  (registers `crm audit-purge`, `crm backup`, `crm restore`)

    def _cap_body():
        """Only file uploads (multipart) may use MAX_CONTENT_LENGTH; other bodies get MAX_BODY_WITHOUT_FILES.

        Werkzeug applies MAX_FORM_MEMORY_SIZE to multipart text parts only, so an urlencoded or JSON body could
        otherwise be as large as an upload. Runs first, before CSRF protection reads the form.
        """
        if request.mimetype != "multipart/form-data":
            request.max_content_length = app.config["MAX_BODY_WITHOUT_FILES"]

    app.before_request_funcs.setdefault(None, []).insert(0, _cap_body)

    @app.context_processor
    def _csrf_token():
        """Templates' ``csrf_token()``: Flask-WTF's token, asked for once per render. Its own function hands out the
        request's token too, but looks it up through the config, ``g`` and the session each time (about 10 µs): a
        list of follow-ups has a form on each item. Not asked for at all by a page without a form."""
        from flask_wtf.csrf import generate_csrf

        token = []

        def csrf_token() -> str:
            if not token:
                token.append(generate_csrf())
            return token[0]

        return {"csrf_token": csrf_token}

    @app.before_request
    def _scope_request():
        probe = request.endpoint in ("main.healthz", "main.readyz")  # load balancers probe over plain HTTP
        if app.config.get("FORCE_HTTPS") and not request.is_secure and not probe:
            return redirect(request.url.replace("http://", "https://", 1), code=308)
        expired = _enforce_session_age()
        g._scope_token = scoping.set_scope(scoping.scope_for(current_user))
        if expired and not is_public_endpoint(request.endpoint):
            return redirect(url_for("auth.login", next=request.full_path if request.method == "GET" else None))
        return None

    @app.teardown_request
    def _unscope(exc):
        token = g.pop("_scope_token", None)
        if token is not None:
            scoping.reset_scope(token)

    @app.after_request
    def _headers(resp):
        resp.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("X-Frame-Options", "DENY")
        resp.headers.setdefault("Referrer-Policy", "same-origin")
        resp.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        resp.headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        resp.headers.setdefault("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
        if app.config.get("SESSION_COOKIE_SECURE"):
            resp.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if request.endpoint not in ("static", "main.favicon"):
            resp.headers["Cache-Control"] = "no-store"
            resp.vary.add("Cookie")
        return resp


#: No inline script or style anywhere (templates load /static files only); nothing may frame us.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def incident_id() -> str:
    """A short id shown on the error page and written to the log, to find one failure."""
    return secrets.token_hex(4)
