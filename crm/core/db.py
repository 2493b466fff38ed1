"""Declarative base with a naming convention, column helpers and mixins."""
from __future__ import annotations

import enum
from datetime import datetime, timedelta, timezone
from typing import Optional

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every model's base: a metadata with stable constraint names on SQLite and PostgreSQL."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

    def __repr__(self) -> str:
        keys = getattr(self, "__repr_keys__", ())
        extra = "".join(f" {k}={getattr(self, k)!r}" for k in keys)
        return f"<{type(self).__name__} id={getattr(self, 'id', None)}{extra}>"


def utcnow() -> datetime:
    """The current instant, timezone-aware UTC (callable default, never evaluated at import)."""
    return datetime.now(timezone.utc)


class UTCDateTime(sa.types.TypeDecorator):
    """Timezone-aware datetimes stored as UTC; SQLite gives them back aware too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use an aware UTC datetime")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def enum_type(enum_cls: type[enum.Enum], name: str) -> sa.Enum:
    """A portable enum column: VARCHAR plus a named CHECK constraint, storing the member values."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls) + 4,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


def fk(target: str, *, nullable: bool = False, ondelete: Optional[str] = None, **kw) -> Mapped:
    """An indexed foreign key column."""
    return mapped_column(sa.ForeignKey(target, ondelete=ondelete), nullable=nullable, index=True, **kw)


class TimestampMixin:
    """created_at / modified_at in UTC."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    modified_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)


class SoftDeleteMixin:
    """Rows are hidden, not removed, so history and audit stay intact."""

    is_deleted: Mapped[bool] = mapped_column(default=False, server_default=sa.false(), nullable=False)


class VersionMixin:
    """An optimistic-lock counter; forms carry it and a stale save is refused."""

    version: Mapped[int] = mapped_column(default=1, server_default="1", nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls):  # noqa: N805
        return {"version_id_col": cls.__table__.c.version}


def upsert_insert(target, dialect_name: str):
    """``INSERT INTO target`` (a model or a Table) in the dialect's own construct, which takes ``ON CONFLICT ...
    DO NOTHING / DO UPDATE`` (the same clause on SQLite and PostgreSQL); plain ``INSERT`` on any other engine."""
    from sqlalchemy.dialects import postgresql, sqlite

    return {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect_name, sa.insert)(target)


def local_time_text(column, dialect_name: str, offset: timedelta):
    """SQL for the text ``YYYY-MM-DD HH:MM:SS`` of a stored UTC instant (a :class:`UTCDateTime` column) at the
    fixed ``offset`` from UTC, seconds truncated like ``str(datetime)[:19]``; NULL stays NULL.

    For exports that write text anyway (CSV): the database formats each value, so no ``datetime`` object is built,
    moved to local time and formatted per row in Python. The offset is a whole number of seconds from a constant.
    """
    seconds = int(offset.total_seconds())
    if dialect_name == "postgresql":
        shifted = sa.func.timezone("UTC", column) + sa.literal_column(f"interval '{seconds} seconds'")
        return sa.func.to_char(shifted, "YYYY-MM-DD HH24:MI:SS")
    # only 'YYYY-MM-DD HH:MM:SS' of the stored text: SQLite before 3.42 rounds the fraction to milliseconds, so
    # 16:59:59.9997 would become 17:00:00
    return sa.func.strftime("%Y-%m-%d %H:%M:%S", sa.func.substr(column, 1, 19), f"{seconds:+d} seconds")


_GENERIC_PLANS = sa.text("SELECT set_config('plan_cache_mode', 'auto', true)")


def generic_plans(session) -> None:
    """Let this transaction's prepared statements use PostgreSQL's generic plans (a no-op on SQLite): for a page
    whose statements look rows up by key, where one plan fits every value. The connections plan each run for its
    own values otherwise (crm/core/pgconn.py). Ends with the transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_GENERIC_PLANS)
