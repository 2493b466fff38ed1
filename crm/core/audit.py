"""The audit trail: every create, update and delete, and every reveal or export of personal data."""
from __future__ import annotations

import enum
import json
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Iterable, Optional

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import inspect

from crm.core.models import AuditEntry
from crm.extensions import db

#: columns never written to the trail
SECRET_COLUMNS = {"password_hash", "session_token", "token_hash", "checkin_token", "public_token"}
#: columns holding personal mobile numbers: masked in the trail
MOBILE_COLUMNS = {"mobile"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


def snapshot(obj, fields: Optional[Iterable[str]] = None) -> dict:
    """The column values of a row, safe to store: no secrets, mobiles masked."""
    from crm.core.validators import mask_mobile

    mapper = inspect(obj).mapper
    out = {}
    for col in mapper.column_attrs:
        key = col.key
        if key in SECRET_COLUMNS or (fields is not None and key not in fields):
            continue
        value = getattr(obj, key)
        if key in MOBILE_COLUMNS and value:
            value = mask_mobile(value)
        out[key] = _jsonable(value)
    return out


def diff(before: dict, after: dict) -> tuple[dict, dict]:
    """Only the keys whose values changed."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def record(action: str, obj=None, *, before: Optional[dict] = None, after: Optional[dict] = None,
           detail: str = "", bank_id: Optional[int] = None, user=None, object_type: str = "",
           object_id: Optional[int] = None, flush: bool = True) -> AuditEntry:
    """Append one audit entry (flushes; the caller's transaction commits it with the change).

    ``flush=False`` only adds it to the session: bulk writers (ledger imports) add a chunk's entries and flush
    them together, as one multi-row INSERT.
    """
    if user is None and has_request_context() and current_user and current_user.is_authenticated:
        user = current_user
    if obj is not None:
        object_type = object_type or type(obj).__tablename__
        object_id = object_id if object_id is not None else getattr(obj, "id", None)
        if bank_id is None:
            bank_id = getattr(obj, "bank_id", None)
    if bank_id is None and user is not None:
        bank_id = getattr(user, "bank_id", None)
    entry = AuditEntry(
        user_id=getattr(user, "id", None),
        bank_id=bank_id,
        ip=(request.remote_addr or "")[:64] if has_request_context() else "cli",
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=json.dumps(before, ensure_ascii=False, sort_keys=True) if before is not None else None,
        after=json.dumps(after, ensure_ascii=False, sort_keys=True) if after is not None else None,
        detail=detail[:500],
    )
    db.session.add(entry)
    if flush:
        db.session.flush()
    return entry


def record_create(obj, **kw) -> AuditEntry:
    db.session.flush()
    return record("create", obj, after=snapshot(obj), **kw)


def record_update(obj, before: dict, **kw) -> Optional[AuditEntry]:
    db.session.flush()
    b, a = diff(before, snapshot(obj))
    if not a:
        return None
    return record("update", obj, before=b, after=a, **kw)


def record_delete(obj, **kw) -> AuditEntry:
    return record("delete", obj, before=snapshot(obj), **kw)
