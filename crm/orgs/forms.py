"""Administration forms."""
from crm.core.forms import Form
from crm.i18n import lazy_gettext as _l
from wtforms import DateField, SelectField, SelectMultipleField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, Optional


class OrgForm(Form):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    short_name = StringField(_l("Short name"), validators=[Optional(), Length(max=40)])
    kind = SelectField(_l("Kind"), choices=[("bank", _l("Bank or branch")), ("bureau", _l("Bureau")),
                                            ("street", _l("Sub-district office")), ("park", _l("Park"))])
    parent = SelectField(_l("Parent bank (for a branch)"), coerce=int, choices=[], validate_choice=True)
    submit = SubmitField(_l("Create organisation"))


class UserForm(Form):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    name = StringField(_l("Name"), validators=[Optional(), Length(max=60)])
    role = SelectField(_l("Role"), choices=[])
    org = SelectField(_l("Organisation"), coerce=int, choices=[])
    submit = SubmitField(_l("Create user"))


class CampaignForm(Form):
    code = StringField(_l("Code"), validators=[DataRequired(), Length(max=40)])
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=120)])
    district = StringField(_l("District"), validators=[DataRequired(), Length(max=40)])
    start_on = DateField(_l("Start date"), validators=[DataRequired()])
    end_on = DateField(_l("End date"), validators=[DataRequired()])
    orgs = SelectMultipleField(_l("Participating organisations"), coerce=int, choices=[])
    submit = SubmitField(_l("Create campaign"))
