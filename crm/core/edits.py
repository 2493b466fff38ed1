"""What a service raises when it refuses a change, and the optimistic lock every edit form relies on.

- :class:`DomainError`: a refused change; ``str()`` is the message for the person at the screen, ``field`` the form
  field it belongs to (or None for a banner), ``code`` a stable machine-readable reason. Each domain derives its
  own (``FirmError``, ``VisitError``, ``EventError``, ``CreditError``).
- :class:`StaleEditError` and :func:`check_version`: the record changed since the form was loaded. Models with
  ``VersionMixin`` (crm/core/db.py) also make SQLAlchemy raise ``StaleDataError`` when two saves race past the
  check; :func:`crm.core.forms.save_form` answers both with 409 and keeps the other person's change.
"""
from __future__ import annotations

from typing import Any, Optional

from crm.i18n import lazy_gettext as _l

__all__ = ["DomainError", "StaleEditError", "check_version", "CONFLICT_MESSAGE", "ACTION_CONFLICT_MESSAGE"]

#: a stale form: what the person typed is shown again with this message (crm.core.forms.save_form)
CONFLICT_MESSAGE = _l("Someone else changed this record while you were editing it. Your changes were not saved; "
                      "they are still in the form below. Reload the page to see the current version, then enter "
                      "them again.")
#: a stale button press (mark done, check in, ...): nothing to keep (crm.core.forms.perform)
ACTION_CONFLICT_MESSAGE = _l("Someone else changed this record in the meantime, so nothing was changed. Reload the "
                             "page and try again.")


class DomainError(ValueError):
    """A refused change, with a message for people and the form field it belongs to."""

    def __init__(self, message: Any, *, field: Optional[str] = None, code: str = "refused"):
        super().__init__(str(message))
        self.message = message
        self.field = field
        self.code = code

    def __str__(self) -> str:
        return str(self.message)


class StaleEditError(Exception):
    """The record changed since the form was loaded (optimistic locking)."""

    def __init__(self, message: Any = None):
        super().__init__(str(message or CONFLICT_MESSAGE))
        self.message = message or CONFLICT_MESSAGE

    def __str__(self) -> str:
        return str(self.message)


def check_version(obj, submitted) -> None:
    """Refuse a save based on an older version of the record than the one stored now.

    ``submitted`` is the form's hidden ``version``; an empty one (an API or a form without the field) skips the
    check, anything that is not the stored number is stale.
    """
    if submitted is None or submitted == "":
        return
    try:
        submitted = int(submitted)
    except (TypeError, ValueError):
        raise StaleEditError() from None
    if submitted != obj.version:
        raise StaleEditError()
