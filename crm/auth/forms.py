"""Sign-in and password forms."""
from crm.core.forms import Form
from crm.i18n import lazy_gettext as _l
from wtforms import BooleanField, HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length


class LoginForm(Form):
    class Meta:
        # nothing is stored; a control character in a user name must still be audited as a failed sign-in
        refuse_control_characters = False

    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])
    remember = BooleanField(_l("Keep me signed in on this device"))
    next = HiddenField()
    submit = SubmitField(_l("Sign in"))


class PasswordChangeForm(Form):
    current = PasswordField(_l("Current password"), validators=[DataRequired()])
    new = PasswordField(_l("New password"), validators=[DataRequired(), Length(min=8, max=128)])
    confirm = PasswordField(_l("Repeat the new password"),
                            validators=[DataRequired(), EqualTo("new", message=_l("The passwords differ."))])
    submit = SubmitField(_l("Change password"))


class EmptyForm(Form):
    """A POST-only button (sign out, delete, toggle) that carries CSRF."""

    submit = SubmitField(_l("Submit"))
