"""Users and personal API tokens."""
from __future__ import annotations

import enum
import secrets
import unicodedata
from datetime import datetime
from typing import Optional

import sqlalchemy as sa
from flask_login import UserMixin
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm.core.db import TimestampMixin, UTCDateTime, enum_type, fk
from crm.extensions import db
from crm.orgs.models import Organisation


class Role(enum.StrEnum):
    RM = "rm"
    BANK_MANAGER = "bank_manager"
    BUREAU = "bureau"
    ADMIN = "admin"


BANK_ROLES = {Role.RM, Role.BANK_MANAGER}


def normalize_username(raw: str) -> str:
    """NFKC, strip, casefold and drop zero-width characters so look-alikes collide."""
    s = unicodedata.normalize("NFKC", raw or "")
    s = "".join(ch for ch in s if unicodedata.category(ch) != "Cf")
    return s.strip().casefold()


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


class User(UserMixin, TimestampMixin, db.Model):
    """A person who signs in. Bank users belong to a bank or one of its branches."""

    __tablename__ = "user"
    __repr_keys__ = ("username", "role")
    id: Mapped[int] = mapped_column(primary_key=True)
    #: normalised (NFKC, casefold); unique
    username: Mapped[str] = mapped_column(sa.String(64), unique=True)
    name: Mapped[str] = mapped_column(sa.String(60), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[Role] = mapped_column(enum_type(Role, "user_role"))
    org_id: Mapped[int] = fk("organisation.id")
    #: the top-level bank for rm/bank_manager (denormalised for scoping); NULL for bureau and admin
    bank_id: Mapped[Optional[int]] = fk("organisation.id", nullable=True)
    is_active_flag: Mapped[bool] = mapped_column("is_active", default=True)
    locale: Mapped[str] = mapped_column(sa.String(8), default="zh")
    #: the Flask-Login id: rotated on sign-out, password change and deactivation to end every session
    session_token: Mapped[str] = mapped_column(sa.String(64), unique=True, default=new_session_token)
    last_login_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    must_change_password: Mapped[bool] = mapped_column(default=False)

    org: Mapped[Organisation] = relationship(foreign_keys=[org_id])
    bank: Mapped[Optional[Organisation]] = relationship(foreign_keys=[bank_id])

    __table_args__ = (
        sa.CheckConstraint(
            "(role IN ('rm', 'bank_manager') AND bank_id IS NOT NULL) OR "
            "(role IN ('bureau', 'admin') AND bank_id IS NULL)",
            name="bank_matches_role",
        ),
    )

    def get_id(self) -> str:
        return self.session_token

    @property
    def is_active(self) -> bool:
        return bool(self.is_active_flag)

    @property
    def is_bank_user(self) -> bool:
        return self.role in BANK_ROLES

    @property
    def is_bureau(self) -> bool:
        return self.role == Role.BUREAU

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @hybrid_property
    def display_name(self) -> str:
        return self.name or self.username

    @display_name.inplace.expression
    @classmethod
    def _display_name_expression(cls):
        """The same in SQL, for lists that read names as columns (``firms.services.bank_user_choices``)."""
        return sa.func.coalesce(sa.func.nullif(cls.name, ""), cls.username)

    def rotate_session_token(self) -> None:
        """End every session and remember-me cookie of this user."""
        self.session_token = new_session_token()


class ApiToken(TimestampMixin, db.Model):
    """A personal API token; only its SHA-256 is stored."""

    __tablename__ = "api_token"
    __repr_keys__ = ("name",)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = fk("user.id", ondelete="CASCADE")
    name: Mapped[str] = mapped_column(sa.String(60))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(12))
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()
