"""Forms of the token page."""
from crm.core.forms import Form
from crm.i18n import lazy_gettext as _l
from wtforms import StringField, SubmitField
from wtforms.validators import DataRequired, Length


class TokenForm(Form):
    name = StringField(_l("Token name"), validators=[DataRequired(), Length(max=60)],
                       description=_l("What the token is for, e.g. the bureau's weekly spreadsheet."))
    submit = SubmitField(_l("Create token"))
