"""Credit forms: money in 万元 (converted to fen exactly), rates in %, discounts in BP."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

from crm.core.forms import Form
from wtforms import (
    BooleanField, DateField, HiddenField, IntegerField, SelectField, StringField, SubmitField, TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from crm.core.formatting import wan_to_fen
from crm.credit.models import OwnerRelation, PatentKind
from crm.credit.services import LEGAL_STATUSES, MAX_DISCOUNT_BP, MAX_TERM_MONTHS
from crm.i18n import lazy_gettext as _l

OWNER_RELATIONS = {
    OwnerRelation.SELF: _l("The borrower itself"),
    OwnerRelation.PARENT: _l("Parent company"),
    OwnerRelation.SUBSIDIARY: _l("Subsidiary"),
    OwnerRelation.CONTROLLING_SHAREHOLDER: _l("Controlling shareholder"),
    OwnerRelation.HK_AFFILIATE: _l("Hong Kong affiliate (cross-border)"),
}

PATENT_KIND_LABELS = {
    PatentKind.INVENTION: _l("Invention"),
    PatentKind.UTILITY_MODEL: _l("Utility model"),
    PatentKind.DESIGN: _l("Design"),
    PatentKind.PCT_INVENTION: _l("PCT invention"),
    PatentKind.PCT_UTILITY_MODEL: _l("PCT utility model"),
}


def _wan_to_fen_or_error(raw: str, *, allow_zero: bool = False) -> int:
    text = (raw or "").strip().replace(",", "").replace("，", "")
    try:
        fen = wan_to_fen(text)
    except ValueError:
        raise ValidationError(_l("Enter an amount in 万元, e.g. 1000 or 1000.5.")) from None
    if fen < 0 or (fen == 0 and not allow_zero):
        raise ValidationError(_l("The amount must be greater than zero."))
    if fen > 10**15:
        raise ValidationError(_l("The amount is too large."))
    return fen


class WanField(StringField):
    """An amount typed in 万元; ``.fen`` holds the exact integer fen after validation (None when empty)."""

    fen = None

    def pre_validate(self, form):
        self.fen = None
        if self.data is not None and str(self.data).strip():
            self.fen = _wan_to_fen_or_error(str(self.data))


class RatePercentField(StringField):
    """An annual rate typed in % (3.45); ``.bp`` holds basis points (345)."""

    bp = None

    def pre_validate(self, form):
        self.bp = None
        text = (self.data or "").strip().rstrip("%")
        if not text:
            return
        try:
            d = Decimal(text) * 100
        except InvalidOperation:
            raise ValidationError(_l("Enter the rate in %, e.g. 3.45.")) from None
        if not d.is_finite() or d != d.to_integral_value():
            raise ValidationError(_l("Enter the rate in % with at most two decimals, e.g. 3.45."))
        if not 0 <= d <= 5000:
            raise ValidationError(_l("The executed rate must be between 0% and 50%."))
        self.bp = int(d)


class ApplicationForm(Form):
    firm = StringField(_l("Firm (name or unified social credit code)"), validators=[DataRequired(), Length(max=200)],
                       render_kw={"list": "firm-options", "autocomplete": "off"})
    product_code = SelectField(_l("Credit product"), validators=[DataRequired()])
    requested_wan = WanField(_l("Requested amount (万元)"), validators=[DataRequired()],
                             render_kw={"inputmode": "decimal"})
    requested_term_months = IntegerField(_l("Requested term (months)"),
                                         validators=[Optional(), NumberRange(1, MAX_TERM_MONTHS)],
                                         render_kw={"inputmode": "numeric"})
    accepted_on = DateField(_l("Acceptance date (materials complete)"), validators=[InputRequired()],
                            description=_l("The approval SLA is counted in working days from the next day."))
    campaign_id = SelectField(_l("Campaign"), coerce=int, validators=[InputRequired()])
    branch_id = SelectField(_l("Branch"), coerce=int, validators=[Optional()])
    rm_id = SelectField(_l("Relationship manager"), coerce=int, validators=[InputRequired()])
    guarantee = StringField(_l("Guarantee"), validators=[Optional(), Length(max=200)],
                            description=_l("e.g. patent pledge, credit, third-party guarantee"))
    is_first_loan = BooleanField(_l("First loan of this firm (首贷户)"))
    in_risk_pool = BooleanField(_l("Covered by the risk compensation pool"))
    has_subsidy = BooleanField(_l("Interest subsidy"))
    remarks = TextAreaField(_l("Remarks"), validators=[Optional(), Length(max=2000)])
    version = HiddenField()
    submit = SubmitField(_l("Save"))


class MoveForm(Form):
    """A plain move: start review, withdraw, contract signed, pledge registered, repaid."""

    to = HiddenField(validators=[DataRequired()])
    changed_on = DateField(_l("Date"), validators=[InputRequired()])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=300)])
    version = HiddenField()
    submit = SubmitField(_l("Confirm"))


class ApproveForm(MoveForm):
    approved_wan = WanField(_l("Approved amount (万元)"), validators=[DataRequired()],
                            render_kw={"inputmode": "decimal"})
    rate_pct = RatePercentField(_l("Executed annual rate (%)"), validators=[DataRequired()],
                                render_kw={"inputmode": "decimal"})
    discount_bp = IntegerField(
        _l("Rate discount (BP)"),
        validators=[InputRequired(message=_l("Enter the rate discount in BP (0 to 20).")),
                    NumberRange(0, MAX_DISCOUNT_BP, message=_l("The rate discount must be between 0 and 20 BP."))],
        render_kw={"inputmode": "numeric", "min": 0, "max": MAX_DISCOUNT_BP})
    term_months = IntegerField(_l("Term (months)"), validators=[InputRequired(), NumberRange(1, MAX_TERM_MONTHS)],
                               render_kw={"inputmode": "numeric"})


class DeclineForm(MoveForm):
    decline_reason_code = SelectField(_l("Decline reason"), validators=[DataRequired()])


class DisburseForm(MoveForm):
    disbursed_wan = WanField(_l("Disbursed amount (万元)"), validators=[Optional()],
                             description=_l("Leave empty for the full approved amount."),
                             render_kw={"inputmode": "decimal"})


class PledgeForm(Form):
    patent_no = StringField(_l("Patent number"), validators=[DataRequired(), Length(max=40)],
                            description=_l("e.g. ZL202010123456.2; the type is derived from the number."))
    title = StringField(_l("Title"), validators=[Optional(), Length(max=300)])
    granted_on = DateField(_l("Grant date"), validators=[Optional()])
    expires_on = DateField(_l("Expiry date"), validators=[Optional()])
    legal_status = SelectField(_l("Legal status"), choices=[SelectChoice(k, v) for k, v in LEGAL_STATUSES.items()])
    owner_name = StringField(_l("Owner (patentee)"), validators=[Optional(), Length(max=200)])
    owner_relation = SelectField(_l("Owner's relation to the borrower"),
                                 choices=[SelectChoice(k.value, v) for k, v in OWNER_RELATIONS.items()])
    licence_no = StringField(_l("Licence number (cross-border)"), validators=[Optional(), Length(max=60)])
    licence_note = StringField(_l("Licence details"), validators=[Optional(), Length(max=300)],
                               description=_l("Licensor, scope and term of the licence to the borrower."))
    submit = SubmitField(_l("Add pledged patent"))


class RegisterPledgeForm(Form):
    granted_on = DateField(_l("Grant date"), validators=[Optional()])
    expires_on = DateField(_l("Expiry date"), validators=[Optional()])
    registration_no = StringField(_l("CNIPA pledge registration number"), validators=[DataRequired(), Length(max=60)])
    registered_on = DateField(_l("Registration date"), validators=[InputRequired()])
    secured_wan = WanField(_l("Registered secured amount (万元)"), validators=[DataRequired()],
                           render_kw={"inputmode": "decimal"})
    version = HiddenField()
    submit = SubmitField(_l("Save registration"))


class ValuationForm(Form):
    valuer = StringField(_l("Valuer"), validators=[DataRequired(), Length(max=120)])
    ip_asset_id = SelectField(_l("Patent"), coerce=int, validators=[Optional()])
    requested_on = DateField(_l("Requested on"), validators=[InputRequired()])
    completed_on = DateField(_l("Completed on"), validators=[Optional()])
    amount_wan = WanField(_l("Valued amount (万元)"), validators=[Optional()], render_kw={"inputmode": "decimal"})
    submit = SubmitField(_l("Add valuation"))


class CompleteValuationForm(Form):
    completed_on = DateField(_l("Completed on"), validators=[InputRequired()])
    amount_wan = WanField(_l("Valued amount (万元)"), validators=[DataRequired()], render_kw={"inputmode": "decimal"})
    submit = SubmitField(_l("Save"))


class PoolForm(Form):
    name = StringField(_l("Pool name"), validators=[DataRequired(), Length(max=200)])
    exchange = StringField(_l("Exchange"), validators=[DataRequired(), Length(max=60)],
                           description=_l("e.g. Shenzhen Stock Exchange"))
    issue_on = DateField(_l("Issue date"), validators=[Optional()])
    submit = SubmitField(_l("Create pool"))


class PoolAddForm(Form):
    application_id = SelectField(_l("Approved IP-pledge loan"), coerce=int, validators=[InputRequired()])
    submit = SubmitField(_l("Add to pool"))


class OverrideForm(Form):
    day = DateField(_l("Day"), validators=[InputRequired()])
    is_workday = SelectField(_l("The day is"), choices=[SelectChoice("1", _l("a working day")),
                                                              SelectChoice("0", _l("a day off"))])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=200)])
    submit = SubmitField(_l("Save override"))
