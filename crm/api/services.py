"""Personal API tokens: created once, stored only as a SHA-256, revoked by their owner. Services never commit."""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Optional

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from crm.auth.models import ApiToken, User
from crm.core import audit
from crm.core.db import utcnow
from crm.extensions import db

TOKEN_PREFIX = "crm_"
#: characters of the token shown in lists to tell tokens apart ("crm_" + 8)
DISPLAY_PREFIX_LEN = 12
DEFAULT_LIFETIME_DAYS = 180
MAX_ACTIVE_TOKENS = 10


class TokenError(ValueError):
    """A refused token operation; ``str()`` is for the page."""


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def lifetime() -> timedelta:
    """How long a token lives (``API_TOKEN_LIFETIME_DAYS``, default 180 days)."""
    return timedelta(days=int(current_app.config.get("API_TOKEN_LIFETIME_DAYS", DEFAULT_LIFETIME_DAYS)))


def expires_at(token: ApiToken) -> datetime:
    return token.created_at + lifetime()


def is_usable(token: ApiToken, now: Optional[datetime] = None) -> bool:
    now = now or utcnow()
    return token.revoked_at is None and expires_at(token) > now and token.user.is_active


def user_tokens(user: User) -> list[ApiToken]:
    return list(db.session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id)
                                   .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())))


def create_token(user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns the row and the plain token, which is never stored or shown again.

    :raise TokenError: for an empty or long name, or too many active tokens.
    """
    name = (name or "").strip()
    if not name or len(name) > 60:
        raise TokenError(_("Give the token a name of at most 60 characters."))
    active = [t for t in user_tokens(user) if is_usable(t)]
    if len(active) >= MAX_ACTIVE_TOKENS:
        raise TokenError(_("You already have %(n)s active tokens; revoke one first.", n=MAX_ACTIVE_TOKENS))
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=hash_token(raw), prefix=raw[:DISPLAY_PREFIX_LEN])
    db.session.add(token)
    db.session.flush()
    audit.record_create(token, user=user, bank_id=user.bank_id)
    return token, raw


def revoke_token(token: ApiToken, *, user: User) -> None:
    """Revoke one of the user's own tokens (idempotent)."""
    if token.user_id != user.id:
        raise TokenError(_("This is not your token."))
    if token.revoked_at is not None:
        return
    before = audit.snapshot(token)
    token.revoked_at = utcnow()
    audit.record_update(token, before=before, user=user, bank_id=user.bank_id)
    db.session.flush()


def verify_bearer(header: Optional[str]) -> Optional[ApiToken]:
    """The usable token named by an ``Authorization: Bearer ...`` header, or None."""
    if not header:
        return None
    scheme, _sep, raw = header.strip().partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    if token is None or not is_usable(token):
        return None
    return token


def touch(token: ApiToken) -> None:
    """Record the last use at most once a minute, on its own connection: a GET never commits the session."""
    now = utcnow()
    last = token.last_used_at
    if last is not None and now - last < timedelta(minutes=1):
        return
    table = ApiToken.__table__
    with db.engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.id == token.id).values(last_used_at=now))
