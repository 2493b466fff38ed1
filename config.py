"""Configuration classes. Production settings come from the environment."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

#: Secrets that must never run in production (shipped in docs, tests or examples).
KNOWN_WEAK_SECRETS = {"dev", "secret", "changeme", "dev-not-secret", "test-not-secret", "please-change-me"}


def _default_db_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'crm.sqlite3'}"


class Config:
    """Settings shared by every environment."""

    SECRET_KEY = os.environ.get("SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or _default_db_url()
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    SQLALCHEMY_TRACK_MODIFICATIONS = False

    BABEL_DEFAULT_LOCALE = "zh"
    BABEL_DEFAULT_TIMEZONE = "Asia/Shanghai"
    LANGUAGES = {"zh": "简体中文", "en": "English"}

    #: scrypt N=2^17, r=8, p=1 (OWASP ASVS 5 appendix C).
    PASSWORD_HASH_METHOD = "scrypt:131072:8:1"

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_DURATION = timedelta(days=14)
    SESSION_IDLE_MINUTES = 30
    SESSION_ABSOLUTE_HOURS = 8
    PERMANENT_SESSION_LIFETIME = timedelta(hours=8)

    MAX_CONTENT_LENGTH = 12 * 1024 * 1024
    IMPORT_MAX_BYTES = 10 * 1024 * 1024
    IMPORT_MAX_ROWS = 10_000

    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    LOGIN_RATE_LIMIT = "5/minute;20/hour"

    WTF_CSRF_TIME_LIMIT = None  # the token lives as long as the session
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
    """gunicorn in production: refuses to start without a strong secret."""

    REQUIRE_STRONG_SECRET = True
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    SESSION_COOKIE_NAME = "__Host-session"
    REMEMBER_COOKIE_NAME = "__Host-remember"
    PREFERRED_URL_SCHEME = "https"
    TRUSTED_HOSTS = [h for h in os.environ.get("TRUSTED_HOSTS", "").split(",") if h] or None
