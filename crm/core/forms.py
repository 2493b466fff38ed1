"""The base of every form: Flask-WTF (CSRF) plus the input rules every text field shares.

``Form`` refuses C0 control characters (NUL and the like; tab, line feed and carriage return are allowed) in any
field whose value is text, with a message in the user's language. PostgreSQL cannot store NUL in text at all, and
the other control characters have no business in a name, a summary or a remark (SECURITY.md IV-5). The rule lives
here, once, so a new form cannot forget it: every form in the app derives from ``Form``, and
``tests/test_forms_base.py`` fails when one does not.
"""
from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms.validators import StopValidation

__all__ = ["Form", "CONTROL_CHARACTERS", "refuse_control_characters"]

#: C0 controls except tab, line feed and carriage return, plus DEL
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def refuse_control_characters(form, field) -> None:
    """WTForms validator: stop with a clear message when a text value holds a control character."""
    values = field.data if isinstance(field.data, (list, tuple)) else [field.data]
    if any(isinstance(v, str) and CONTROL_CHARACTERS.search(v) for v in values):
        raise StopValidation(_l("Contains control characters that cannot be saved; please retype it."))


class Form(FlaskForm):
    """FlaskForm with the shared text rules; derive every form from this class."""

    class Meta(FlaskForm.Meta):
        def bind_field(self, form, unbound_field, options):
            field = super().bind_field(form, unbound_field, options)
            field.validators = [refuse_control_characters, *field.validators]
            return field
