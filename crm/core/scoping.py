"""Tenant isolation: the one mechanism that scopes every query for bank-owned rows.

Each bank-owned model declares ``__tenant_criteria__`` (a classmethod building the
WHERE clause for a bank). A ``do_orm_execute`` hook adds it, through
``with_loader_criteria``, to every ORM SELECT, UPDATE and DELETE, including
``Session.get`` and relationship loads. The scope is set per request from the
signed-in user and defaults to *nobody* inside a request, so a forgotten scope
fails closed. Command-line tools run with the system scope.

Cost: the criteria are *lambda* criteria (``with_loader_criteria(Model, lambda cls: ...,
track_closure_variables=False)``), so SQLAlchemy builds each model's WHERE clause once, keys the
compiled-statement cache on the lambda's code and passes the bank id as a bound parameter; the
options of one bank are built once and reused (``_bank_options``). A bank user's statement costs
tens of microseconds more than the system scope's, not a millisecond (docs/performance.md, 4.1).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import weakref
from dataclasses import dataclass
from typing import Iterator, Optional

import sqlalchemy as sa
from flask import abort, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session, with_loader_criteria

from crm.core.validators import row_id


@dataclass(frozen=True)
class Scope:
    """Who is looking: ``bank_id`` None with ``all_banks`` True sees every bank."""

    bank_id: Optional[int]
    all_banks: bool = False
    label: str = ""

    @property
    def restricted(self) -> bool:
        return not self.all_banks


SYSTEM = Scope(bank_id=None, all_banks=True, label="system")
NOBODY = Scope(bank_id=-1, all_banks=False, label="nobody")

_current: contextvars.ContextVar[Optional[Scope]] = contextvars.ContextVar("crm_scope", default=None)
_TENANT_MODELS: list[type] = []


def tenant_model(cls):
    """Class decorator registering a model whose rows belong to a bank."""
    if not hasattr(cls, "__tenant_criteria__"):
        raise TypeError(f"{cls.__name__} needs __tenant_criteria__")
    _TENANT_MODELS.append(cls)
    _bank_options.cache_clear()
    _scoped_statements.clear()  # (kept forms carry the criteria of the models registered when they were made)
    return cls


def tenant_models() -> tuple[type, ...]:
    return tuple(_TENANT_MODELS)


def current_scope() -> Scope:
    """The scope in force: explicit, else nobody inside a request, else system (CLI, migrations)."""
    scope = _current.get()
    if scope is not None:
        return scope
    return NOBODY if has_request_context() else SYSTEM


def set_scope(scope: Scope) -> contextvars.Token:
    return _current.set(scope)


def reset_scope(token: contextvars.Token) -> None:
    _current.reset(token)


@contextlib.contextmanager
def scoped(scope: Scope) -> Iterator[Scope]:
    """Run a block under a given scope (tests, background jobs)."""
    token = _current.set(scope)
    try:
        yield scope
    finally:
        _current.reset(token)


def scope_for(user) -> Scope:
    """The scope of a user: bank users see their bank; bureau and admin see every bank."""
    if user is None or not getattr(user, "is_authenticated", False):
        return NOBODY
    if user.bank_id is not None:
        return Scope(bank_id=user.bank_id, all_banks=False, label=f"bank:{user.bank_id}")
    return Scope(bank_id=None, all_banks=True, label=user.role)


def _add_tenant_criteria(state) -> None:
    if not (state.is_select or state.is_update or state.is_delete):
        return
    if state.is_column_load or state.is_relationship_load:
        return  # criteria already propagate to these loads from the parent statement
    if state.execution_options.get("skip_tenant_scope"):
        return
    scope = current_scope()
    if not scope.restricted:
        return
    state.statement = _scoped_statement(state.statement, scope.bank_id)


#: statement -> {bank id: the statement with that bank's criteria}; weak, so a statement built for one request goes
#: with it, and one built once (at module level, or by :func:`_by_key`) keeps its scoped forms
_scoped_statements: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _scoped_statement(stmt, bank_id: int):
    """``stmt`` with the criteria of ``bank_id``, the same object each time for the same statement and bank.

    SQLAlchemy computes a statement's cache key once per object (it is immutable), but adding the options makes a
    new object each execution, whose key (walking every tenant model's criteria) is computed again: about a fifth of
    a firm page's statement overhead. A statement built once with bound parameters (``sa.bindparam``) is therefore
    scoped once per bank and its key computed once. Keyed by identity: a statement derived from it (``.where()``)
    is another object, scoped on its own.
    """
    try:
        by_bank = _scoped_statements[stmt]
    except KeyError:
        by_bank = _scoped_statements[stmt] = {}
    scoped_stmt = by_bank.get(bank_id)
    if scoped_stmt is None:
        scoped_stmt = by_bank[bank_id] = stmt.options(*_bank_options(bank_id))
    return scoped_stmt


@functools.lru_cache(maxsize=256)
def _bank_options(bank_id: int) -> tuple:
    """The loader-criteria options restricting every tenant model to one bank, built once per bank.

    The lambda is analysed once by SQLAlchemy: ``bank_id`` (a closure variable holding a literal)
    becomes a bound parameter extracted anew for every bank, so one compiled statement serves every
    bank and two banks never share a value. The lambda is resolved per model at compile time
    (``__tenant_criteria__`` must return the same SQL shape for any bank id, which a plain
    comparison, an ``IN (subquery)`` or a correlated ``EXISTS`` on it does). Options are immutable, so
    reusing them across statements, sessions and threads is safe.
    """
    return tuple(
        with_loader_criteria(model, lambda cls: cls.__tenant_criteria__(bank_id), include_aliases=True,
                             track_closure_variables=False)
        for model in _TENANT_MODELS
    )


def install(session_factory=Session) -> None:
    """Attach the hook once to all sessions."""
    if not event.contains(session_factory, "do_orm_execute", _add_tenant_criteria):
        event.listen(session_factory, "do_orm_execute", _add_tenant_criteria)


install()


def get_or_404(model, ident, *, include_deleted: bool = False, options=()):
    """Load a row through the scoped session; another bank's row is 404, exactly like a missing one.

    Like ``Session.get``: a row this session holds already is not read again (its loader ``options`` are then
    moot). Otherwise one statement per model and options reads it (:func:`_by_key`): pass options built once, at
    module level, to reuse it.

    :raise 404: when the id is malformed, missing, deleted or outside the viewer's scope.
    """
    from crm.extensions import db

    ident = row_id(ident)
    if ident is None:
        abort(404)
    session = db.session
    obj = session.identity_map.get(session.identity_key(model, ident))
    if obj is None or sa.inspect(obj).expired:
        obj = session.execute(_by_key(model, tuple(options or ())), {"ident": ident}).unique().scalar_one_or_none()
    if obj is None or (not include_deleted and getattr(obj, "is_deleted", False)):
        abort(404)
    return obj


@functools.lru_cache(maxsize=128)
def _by_key(model, options: tuple) -> sa.Select:
    """The statement reading one row of ``model`` by its primary key, with loader ``options``: built once, so the
    scoped form the hook keeps for it is reused too (:func:`_add_tenant_criteria`). Loader options compare by
    identity: options built at each call make an entry each (bounded, never reused)."""
    (key,) = sa.inspect(model).primary_key
    return sa.select(model).where(key == sa.bindparam("ident")).options(*options)


def visible(stmt: sa.Select) -> sa.Select:
    """Explicit marker for readers: every ORM statement is already scoped by the hook."""
    return stmt
