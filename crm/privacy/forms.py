"""The data-subject request form: the person's mobile (required) and, optionally, their name."""
from __future__ import annotations

from wtforms import StringField, TelField
from wtforms.validators import InputRequired, ValidationError

from crm.core.forms import Form
from crm.core.validators import ValidationError as CnValidationError
from crm.core.validators import normalize_mobile, normalize_text
from crm.i18n import lazy_gettext as _l

MOBILE_REQUIRED = _l("Enter the person's mobile number.")
MOBILE_INVALID = _l("Enter a valid mainland China mobile number: 11 digits starting with 1 "
                    "(an optional +86 prefix is allowed).")
NAME_TOO_LONG = _l("The name may have at most 60 characters.")


def _mobile(form, field):
    """Normalise to 11 digits (crm.core.validators.normalize_mobile); the message comes from our catalogue."""
    raw = field.data or ""
    if len(raw) > 30:
        raise ValidationError(MOBILE_INVALID)
    try:
        field.data = normalize_mobile(raw)
    except CnValidationError:
        raise ValidationError(MOBILE_INVALID) from None


def _name(form, field):
    field.data = normalize_text(field.data)
    if len(field.data) > 60:
        raise ValidationError(NAME_TOO_LONG)


class SubjectForm(Form):
    """Submitted by POST only: a mobile never travels in a URL (PI-6)."""

    mobile = TelField(_l("Mobile"), validators=[InputRequired(message=MOBILE_REQUIRED), _mobile],
                      render_kw={"autocomplete": "off", "inputmode": "tel"})
    name = StringField(_l("Name (optional)"), validators=[_name], render_kw={"autocomplete": "off"})
