"""HTTP helpers shared by the firm, visit and import views (kept free of view imports to avoid cycles)."""
from __future__ import annotations

from flask_babel import gettext as _
from werkzeug.exceptions import Conflict


def conflict(message: str | None = None):
    """Answer 409 with a clear message; the other person's change stays as it is."""
    exc = Conflict(description=message or _(
        "Someone else changed this record while you were editing it. Your changes were not saved; "
        "the page now shows their version. Please reload and enter your changes again."))
    exc.user_message = True
    raise exc
