"""Firm, contact and account forms."""
from __future__ import annotations

from crm.core.forms import Form
from wtforms import BooleanField, DateField, HiddenField, IntegerField, SelectField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, ValidationError

from crm.core.formatting import fen_to_wan, wan_to_fen
from crm.firms import lookups
from crm.firms.models import SizeClass, SmeTier
from crm.i18n import lazy_gettext as _l

SIZE_LABELS = {
    SizeClass.LARGE: _l("Large"), SizeClass.MEDIUM: _l("Medium"), SizeClass.SMALL: _l("Small"),
    SizeClass.MICRO: _l("Micro"),
}
SME_LABELS = {
    SmeTier.NONE: _l("None"),
    SmeTier.INNOVATIVE: _l("Innovative SME"),
    SmeTier.SPECIALISED: _l("Specialised and sophisticated SME"),
    SmeTier.LITTLE_GIANT: _l("Little giant"),
}


def _wan(form, field):
    if field.data in (None, ""):
        return
    try:
        fen = wan_to_fen(field.data)
    except ValueError:
        raise ValidationError(_l("Enter an amount in 10,000 yuan, e.g. 500 or 12.5.")) from None
    if fen < 0:
        raise ValidationError(_l("The amount may not be negative."))


class FirmForm(Form):
    name = StringField(_l("Firm name"), validators=[DataRequired(), Length(max=120)])
    credit_code = StringField(_l("Unified social credit code"), validators=[DataRequired(), Length(max=40)])
    area_code = SelectField(_l("District"), validators=[Optional()])
    street_id = SelectField(_l("Street"), validators=[Optional()])
    industry_code = SelectField(_l("Priority industry"), validators=[DataRequired()])
    section_code = SelectField(_l("National industry section"), validators=[Optional()])
    size_class = SelectField(_l("Size class"), validators=[Optional()])
    founded_on = DateField(_l("Founded on"), validators=[Optional()])
    registered_capital_wan = StringField(_l("Registered capital (10,000 yuan)"), validators=[Optional(), _wan])
    headcount = IntegerField(_l("Headcount"), validators=[Optional(), NumberRange(min=0, max=10_000_000)])
    high_tech_cert_no = StringField(_l("High-tech certificate number"), validators=[Optional(), Length(max=40)])
    high_tech_issued_on = DateField(_l("High-tech certificate issued on"), validators=[Optional()])
    sme_tier = SelectField(_l("SME tier"), validators=[Optional()])
    is_tech_sme = BooleanField(_l("Registered tech SME"))
    invention_patents = IntegerField(_l("Invention patents"), default=0,
                                     validators=[Optional(), NumberRange(min=0, max=1_000_000)])
    utility_models = IntegerField(_l("Utility models"), default=0,
                                  validators=[Optional(), NumberRange(min=0, max=1_000_000)])
    design_patents = IntegerField(_l("Design patents"), default=0,
                                  validators=[Optional(), NumberRange(min=0, max=1_000_000)])
    software_copyrights = IntegerField(_l("Software copyrights"), default=0,
                                       validators=[Optional(), NumberRange(min=0, max=1_000_000)])
    is_cross_border = BooleanField(_l("Cross-border (Hong Kong related)"))
    version = HiddenField()
    submit = SubmitField(_l("Save"))

    def __init__(self, *args, firm=None, **kwargs):
        super().__init__(*args, obj=firm, **kwargs)
        self.firm = firm
        self.area_code.choices = lookups.choices(lookups.areas(), empty="—")
        self.street_id.choices = [("", "—")] + [(str(s.id), f"{s.area.name} · {s.name}") for s in lookups.streets()]
        self.industry_code.choices = lookups.choices(lookups.industries())
        self.section_code.choices = [("", "—")] + [(s.code, f"{s.code} {s.name_zh}") for s in lookups.sections()]
        self.size_class.choices = [("", "—")] + [(k.value, v) for k, v in SIZE_LABELS.items()]
        self.sme_tier.choices = [(k.value, v) for k, v in SME_LABELS.items()]
        if firm is not None and not self.is_submitted():
            self.registered_capital_wan.data = fen_to_wan(firm.registered_capital_fen)
            self.street_id.data = str(firm.street_id) if firm.street_id else ""
            self.size_class.data = firm.size_class.value if firm.size_class else ""
            self.sme_tier.data = firm.sme_tier.value if firm.sme_tier else SmeTier.NONE.value
            self.version.data = firm.version

    def service_data(self) -> dict:
        data = {
            key: getattr(self, key).data for key in (
                "name", "credit_code", "area_code", "industry_code", "section_code", "size_class", "founded_on",
                "headcount", "high_tech_cert_no", "high_tech_issued_on", "sme_tier", "is_tech_sme",
                "invention_patents", "utility_models", "design_patents", "software_copyrights", "is_cross_border",
            )
        }
        data["street_id"] = int(self.street_id.data) if self.street_id.data else None
        cap = self.registered_capital_wan.data
        data["registered_capital_fen"] = wan_to_fen(cap) if cap not in (None, "") else None
        for key in ("invention_patents", "utility_models", "design_patents", "software_copyrights"):
            data[key] = data[key] or 0
        return data


class ContactForm(Form):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=60)])
    title = StringField(_l("Title"), validators=[Optional(), Length(max=60)])
    mobile = StringField(_l("Mobile"), validators=[Optional(), Length(max=30)],
                         render_kw={"inputmode": "tel", "autocomplete": "off"})
    email = StringField(_l("E-mail"), validators=[Optional(), Length(max=120)], render_kw={"inputmode": "email"})
    version = HiddenField()
    submit = SubmitField(_l("Save"))


class OwnerForm(Form):
    owner_id = SelectField(_l("Assigned relationship manager"), validators=[Optional()])
    submit = SubmitField(_l("Assign"))
