"""Configuration classes. Production settings come from the environment."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Callable

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

#: Secrets that must never run in production (shipped in docs, tests or examples).
KNOWN_WEAK_SECRETS = {
    "dev", "secret", "changeme", "change-me", "change_me", "dev-not-secret", "test-not-secret", "please-change-me",
    "secret-key", "secret_key", "your-secret-key", "supersecret", "thisismysecretkey",
    # Superset's published defaults (CVE-2023-27524), a warning of how often defaults ship
    "\x02\x01thisismyscretkey\x01\x02\\e\\y\\y\\h", "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",
}


class ConfigError(ValueError):
    """An environment variable holds a value the app cannot use; the message names the variable."""


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _env_int(name: str, default: int, minimum: int) -> int:
    """A whole number of at least ``minimum`` from the environment (``default`` when unset or blank)."""
    raw = (os.environ.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be a whole number of at least {minimum}, not {value}")
    return value


class _AtStartup:
    """A config value read from the environment when ``create_app`` loads the class (Flask's ``from_object``
    reads every upper-case attribute), not when this module is imported: a bad value stops that app's start-up
    with the variable's name, and importing ``config`` (tests, `make run`) never fails on a production setting."""

    def __init__(self, read: Callable[[], object]):
        self.read = read

    def __get__(self, instance, owner):
        return self.read()


#: Connection pool of each gunicorn worker (docs/deploy.md B.1, "Database connections"). A sync worker serves one
#: request at a time and a request holds one connection, plus a second one for a moment when it saves a
#: dashboard snapshot or touches an API token (their own short transactions): 2 kept open, 2 more on demand.
#: Waiting for a connection only happens when one leaked, since no other request in the worker can return
#: one: 10 s, then an error, well inside gunicorn's 60 s timeout. Connections older than 30 minutes are
#: replaced at check-out, before a firewall or PostgreSQL's idle timeouts drop them silently.
DB_POOL_DEFAULTS = {"DB_POOL_SIZE": 2, "DB_MAX_OVERFLOW": 2, "DB_POOL_TIMEOUT": 10, "DB_POOL_RECYCLE": 1800}


def pool_options_from_env() -> dict:
    """SQLALCHEMY_ENGINE_OPTIONS of production: pre-ping, and the pool sized by DB_POOL_* / DB_MAX_OVERFLOW."""
    from sqlalchemy.engine import make_url

    options: dict = {"pool_pre_ping": True}
    url = make_url(Config.SQLALCHEMY_DATABASE_URI)
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return options  # one in-memory connection (Flask-SQLAlchemy's StaticPool takes no pool size)
    recycle = _env_int("DB_POOL_RECYCLE", DB_POOL_DEFAULTS["DB_POOL_RECYCLE"], 0)
    options.update(
        # 0 would mean "no limit" to SQLAlchemy's QueuePool, which is what max_connections cannot afford
        pool_size=_env_int("DB_POOL_SIZE", DB_POOL_DEFAULTS["DB_POOL_SIZE"], 1),
        max_overflow=_env_int("DB_MAX_OVERFLOW", DB_POOL_DEFAULTS["DB_MAX_OVERFLOW"], 0),
        pool_timeout=_env_int("DB_POOL_TIMEOUT", DB_POOL_DEFAULTS["DB_POOL_TIMEOUT"], 1),
        pool_recycle=recycle or -1,  # 0: never recycle (SQLAlchemy's -1)
    )
    return options


def _default_db_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'crm.sqlite3'}"


class Config:
    """Settings shared by every environment."""

    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or _default_db_url()
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    #: folder of pg_dump / pg_restore for `crm backup` and `crm restore`; unset: Debian's newest
    #: /usr/lib/postgresql/*/bin, else the PATH (crm/core/backup.py find_pg_tool)
    PG_BIN_DIR = _AtStartup(lambda: os.environ.get("PG_BIN_DIR", "").strip() or None)

    BABEL_DEFAULT_LOCALE = "zh"
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    LANGUAGES = {"zh": "简体中文", "en": "English"}

    #: scrypt N=2^17, r=8, p=1 (OWASP ASVS 5 appendix C).
    PASSWORD_HASH_METHOD = "scrypt:131072:8:1"

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    #: "keep me signed in" lasts at most one working day; a restored session still counts from the
    #: last password sign-in, so the absolute limit below holds (crm/security.py)
    REMEMBER_COOKIE_DURATION = timedelta(hours=8)
    SESSION_IDLE_MINUTES = 30
    SESSION_ABSOLUTE_HOURS = 8
    PERMANENT_SESSION_LIFETIME = timedelta(hours=8)

    #: whole request bodies above this get 413 (uploads: IMPORT_MAX_BYTES plus multipart overhead)
    MAX_CONTENT_LENGTH = 12 * 1024 * 1024
    #: Flask 3.1 defaults, stated so a change is deliberate: non-file form data and number of parts
    MAX_FORM_MEMORY_SIZE = 500_000
    MAX_FORM_PARTS = 1000
    #: urlencoded and JSON bodies (anything but a multipart upload): crm.security caps them here
    MAX_BODY_WITHOUT_FILES = 1024 * 1024
    IMPORT_MAX_BYTES = 10 * 1024 * 1024
    IMPORT_MAX_ROWS = 10_000

    #: counters must be shared by every worker in production: redis://host:6379/0 (see docs/security.md)
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    LOGIN_RATE_LIMIT = "5/minute;20/hour"

    WTF_CSRF_ENABLED = True
    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session (itself at most 8 h)
    #: number of reverse proxies in front of the app whose X-Forwarded-For/-Proto are trusted (ProxyFix)
    PROXY_FIX_HOPS = 0
    FORCE_HTTPS = False
    #: audit rows are kept at least this long (PRC Cybersecurity Law art. 21: six months)
    AUDIT_MIN_RETENTION_DAYS = 183
    PAGE_SIZE = 50


class DevConfig(Config):
    """`make run` on the embedded SQLite database."""

    DEBUG = False
    SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-not-secret"


class TestConfig(Config):
    """pytest: an in-memory database unless DATABASE_URL says otherwise."""

    TESTING = True
    SECRET_KEY = "test-not-secret"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = False
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"  # fast; production's method is asserted separately
    RATELIMIT_ENABLED = False


class ProdConfig(Config):
    """gunicorn in production: refuses to start with an unsafe setting (crm.security.check_config)."""

    REQUIRE_STRONG_SECRET = True
    DEBUG = False
    TESTING = False
    #: old keys still accepted for reading sessions while a new SECRET_KEY rolls out
    SECRET_KEY_FALLBACKS = _env_list("SECRET_KEY_FALLBACKS")
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-session"
    REMEMBER_COOKIE_NAME = "__Host-remember"
    PREFERRED_URL_SCHEME = "https"
    TRUSTED_HOSTS = _env_list("TRUSTED_HOSTS") or None
    #: behind the load balancer: trust one proxy hop for the client address and scheme
    PROXY_FIX_HOPS = _AtStartup(lambda: _env_int("PROXY_FIX_HOPS", 1, 0))
    #: the pool per worker from DB_POOL_SIZE, DB_MAX_OVERFLOW, DB_POOL_TIMEOUT, DB_POOL_RECYCLE (a bad value
    #: stops start-up with the variable's name)
    SQLALCHEMY_ENGINE_OPTIONS = _AtStartup(pool_options_from_env)
    FORCE_HTTPS = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SAMESITE = "Lax"
