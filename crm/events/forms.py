"""Events forms: event editing, registrations, invitations, walk-ins, public self-registration, exports."""
from __future__ import annotations

from crm.core.forms import Form
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from wtforms.fields.choices import SelectChoice

from crm.core.validators import normalize_credit_code, normalize_mobile
from crm.core.validators import ValidationError as CnValidationError
from crm.i18n import lazy_gettext as _l

KIND_LABELS = {
    "park": _l("Park session"),
    "industry": _l("Industry session"),
    "bank": _l("Single-bank session"),
    "online": _l("Online matchmaking"),
    "policy": _l("Policy briefing"),
}
STATUS_LABELS = {"planned": _l("Planned"), "held": _l("Held"), "cancelled": _l("Cancelled")}
SOURCE_LABELS = {
    "invited": _l("Invited"),
    "self": _l("Self-registered"),
    "bureau": _l("Recommended by the bureau"),
    "walk_in": _l("Walk-in"),
}
REG_STATUS_LABELS = {"registered": _l("Registered"), "confirmed": _l("Confirmed"), "cancelled": _l("Cancelled")}
ATTENDANCE_LABELS = {"all": _l("Everyone"), "attended": _l("Checked in"), "absent": _l("Not checked in")}


def choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms SelectChoice objects."""
    return [SelectChoice("" if v is None else str(v), label) for v, label in pairs]


def _no_controls(form, field):
    value = field.data or ""
    if isinstance(value, str) and any(ord(c) < 32 and c not in "\n\r\t" for c in value):
        raise ValidationError(_l("Control characters are not allowed."))


def _mobile(form, field):
    try:
        field.data = normalize_mobile(field.data)
    except CnValidationError as exc:
        raise ValidationError(str(exc)) from exc


def _credit_code_optional(form, field):
    if not (field.data or "").strip():
        field.data = ""
        return
    try:
        field.data = normalize_credit_code(field.data)
    except CnValidationError as exc:
        raise ValidationError(str(exc)) from exc


class EventForm(Form):
    code = StringField(_l("Event code"), validators=[Optional(), Length(max=40), _no_controls],
                       description=_l("Leave empty to generate one like EV-2026-0001."))
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200), _no_controls])
    campaign_id = SelectField(_l("Campaign"), coerce=int, validators=[InputRequired()])
    kind = SelectField(_l("Kind"), choices=choices(KIND_LABELS.items()), validators=[InputRequired()])
    held_on = DateField(_l("Date"), validators=[InputRequired()])
    start_time = TimeField(_l("Starts at"), validators=[Optional()])
    end_time = TimeField(_l("Ends at"), validators=[Optional()])
    venue = StringField(_l("Venue"), validators=[Optional(), Length(max=200), _no_controls])
    capacity = IntegerField(_l("Capacity"), validators=[Optional(), NumberRange(min=1, max=100000)],
                            description=_l("Leave empty for no limit."))
    status = SelectField(_l("Status"), choices=choices(STATUS_LABELS.items()), default="planned")
    organisers = SelectMultipleField(_l("Organisers"), coerce=int,
                                     description=_l("Banks and branches, the bureau, sub-district offices, parks."))
    industries = SelectMultipleField(_l("Priority industries"))
    staff = SelectMultipleField(_l("Bank staff present"), coerce=int)
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=5000)])
    deals_signed = IntegerField(_l("Deals signed on site"), default=0, validators=[Optional(), NumberRange(min=0)])
    deals_signed_wan = DecimalField(_l("Amount signed (万元)"), places=2, validators=[Optional(), NumberRange(min=0)])
    intentions = IntegerField(_l("Intentions reached"), default=0, validators=[Optional(), NumberRange(min=0)])
    intentions_wan = DecimalField(_l("Intended amount (万元)"), places=2, validators=[Optional(), NumberRange(min=0)])
    version = HiddenField()
    submit = SubmitField(_l("Save"))

    def validate_end_time(self, field):
        if field.data and self.start_time.data and field.data < self.start_time.data:
            raise ValidationError(_l("The end time is before the start time."))


class PersonFieldsMixin:
    person_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=60), _no_controls])
    person_title = StringField(_l("Title / position"), validators=[Optional(), Length(max=60), _no_controls])
    mobile = StringField(_l("Mobile"), validators=[DataRequired(), Length(max=20), _mobile])


class RegistrationForm(PersonFieldsMixin, Form):
    """Add a person: from an existing firm (firm_id) or a new one (name + credit code)."""

    firm_id = SelectField(_l("Existing firm"), coerce=int, validators=[Optional()], validate_choice=False)
    firm_name = StringField(_l("New firm: name"), validators=[Optional(), Length(max=120), _no_controls])
    credit_code = StringField(_l("New firm: unified social credit code"),
                              validators=[Optional(), Length(max=30), _credit_code_optional])
    need_summary = TextAreaField(_l("Financing need"), validators=[Optional(), Length(max=300), _no_controls])
    preferred_bank_id = SelectField(_l("Preferred bank"), coerce=int, validators=[Optional()])
    source = SelectField(_l("Source"), choices=choices(SOURCE_LABELS.items()), default="invited")
    status = SelectField(_l("Status"), choices=choices(REG_STATUS_LABELS.items()), default="registered")
    remarks = StringField(_l("Remarks"), validators=[Optional(), Length(max=300), _no_controls])
    submit = SubmitField(_l("Add registration"))

    def validate_firm_id(self, field):
        if not field.data and not (self.credit_code.data or "").strip():
            raise ValidationError(_l("Choose an existing firm, or enter a new firm's name and credit code."))


class RegistrationEditForm(PersonFieldsMixin, Form):
    need_summary = TextAreaField(_l("Financing need"), validators=[Optional(), Length(max=300), _no_controls])
    preferred_bank_id = SelectField(_l("Preferred bank"), coerce=int, validators=[Optional()])
    source = SelectField(_l("Source"), choices=choices(SOURCE_LABELS.items()))
    status = SelectField(_l("Status"), choices=choices(REG_STATUS_LABELS.items()))
    absence_reason = StringField(_l("Reason for absence"), validators=[Optional(), Length(max=200), _no_controls])
    remarks = StringField(_l("Remarks"), validators=[Optional(), Length(max=300), _no_controls])
    version = HiddenField()
    submit = SubmitField(_l("Save"))


class InviteFilterForm(Form):
    """A GET filter (no CSRF) choosing the firms to invite."""

    class Meta:
        csrf = False

    industry = SelectField(_l("Industry"), validators=[Optional()])
    area = SelectField(_l("District"), validators=[Optional()])
    street_id = SelectField(_l("Sub-district"), coerce=lambda v: int(v) if v not in (None, "", "None") else None,
                            validators=[Optional()])
    q = StringField(_l("Name or credit code"), validators=[Optional(), Length(max=60)])
    never_reached = BooleanField(_l("Never reached in this campaign"))
    high_tech = BooleanField(_l("High-tech enterprises only"))


class InviteForm(Form):
    firm_ids = SelectMultipleField(_l("Firms"), coerce=int, validate_choice=False)
    submit = SubmitField(_l("Invite the selected firms"))


class WalkInForm(PersonFieldsMixin, Form):
    firm_name = StringField(_l("Firm name"), validators=[DataRequired(), Length(max=120), _no_controls])
    credit_code = StringField(_l("Unified social credit code"),
                              validators=[Optional(), Length(max=30), _credit_code_optional],
                              description=_l("Needed only when the firm is not in the system yet."))
    submit = SubmitField(_l("Add walk-in and check in"))


class PublicRegistrationForm(PersonFieldsMixin, Form):
    firm_name = StringField(_l("Firm name"), validators=[DataRequired(), Length(max=120), _no_controls])
    credit_code = StringField(_l("Unified social credit code"), validators=[DataRequired(), Length(max=30),
                                                                           _credit_code_optional])
    need_summary = TextAreaField(_l("Financing need (optional)"),
                                 validators=[Optional(), Length(max=300), _no_controls])
    preferred_bank_id = SelectField(_l("Preferred bank (optional)"), coerce=int, validators=[Optional()])
    consent = BooleanField(_l("I agree that the organisers process the personal data above to run this event."),
                           validators=[DataRequired(message=_l("Please agree to the processing of your personal "
                                                               "data to register."))])
    submit = SubmitField(_l("Register"))


class ColumnSetForm(Form):
    name = StringField(_l("Column set name"), validators=[DataRequired(), Length(max=60), _no_controls])
    columns = SelectMultipleField(_l("Columns"), validate_choice=False)
    submit = SubmitField(_l("Save column set"))
