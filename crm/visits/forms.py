"""Visit and follow-up forms."""
from __future__ import annotations

from crm.core.forms import Form
from wtforms import (
    BooleanField, DateField, HiddenField, IntegerField, SelectField, SelectMultipleField, StringField, SubmitField,
    TextAreaField,
)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from crm.core.formatting import fen_to_wan, today_local, wan_to_fen
from crm.firms import lookups
from crm.firms.forms import _wan
from crm.i18n import lazy_gettext as _l


class VisitForm(Form):
    firm_id = IntegerField(_l("Firm"), validators=[InputRequired(message=_l("Choose the firm."))])
    visited_on = DateField(_l("Visit date"), validators=[DataRequired()])
    mode_code = SelectField(_l("Mode"), validators=[DataRequired()])
    campaign_id = SelectField(_l("Campaign"), validators=[DataRequired()])
    rm_id = SelectField(_l("Relationship manager"), validators=[Optional()], validate_choice=False)
    companion_ids = SelectMultipleField(_l("Companions"), coerce=int, validate_choice=False)
    contact_id = SelectField(_l("Contact met"), validators=[Optional()], validate_choice=False)
    summary = TextAreaField(_l("Summary"), validators=[Optional(), Length(max=5000)], render_kw={"rows": 4})
    willingness_code = SelectField(_l("Willingness"), validators=[Optional()])
    need_amount_wan = StringField(_l("Amount (10,000 yuan)"), validators=[Optional(), _wan],
                                  render_kw={"inputmode": "decimal"})
    need_term_months = IntegerField(_l("Term (months)"), validators=[Optional(), NumberRange(min=1, max=600)],
                                    render_kw={"inputmode": "numeric"})
    need_purpose = StringField(_l("Purpose"), validators=[Optional(), Length(max=200)])
    need_guarantee = StringField(_l("Intended guarantee"), validators=[Optional(), Length(max=100)])
    wants_subsidy = BooleanField(_l("Interested in interest subsidies"))
    wants_risk_compensation = BooleanField(_l("Interested in risk compensation"))
    next_step = StringField(_l("Next step"), validators=[Optional(), Length(max=300)])
    next_step_owner_id = SelectField(_l("Owner"), validators=[Optional()])
    next_step_due_on = DateField(_l("Due on"), validators=[Optional()])
    version = HiddenField()
    submit = SubmitField(_l("Save visit"))

    def __init__(self, *args, user, visit=None, campaigns=(), colleagues=(), default_campaign=None, **kwargs):
        """The choices a save checks; those only shown (contacts, bureau companions) come with :meth:`show_choices`.

        ``colleagues``: ``(id, name)`` of the bank's active people (``firms.services.bank_user_choices``). The rows
        behind the other choices are kept on the form for the request: the session's identity map holds a row only
        while something references it, and the save's ``db.session.get`` of the chosen campaign, mode and
        willingness level then finds them there instead of selecting them again. The people are not loaded as
        objects (a bank has 131 at scale 1, with their organisations: a fifth of a save's CPU); the save gets the
        chosen ones, mostly the signed-in user, whom the session holds already.
        """
        super().__init__(*args, obj=visit, **kwargs)
        self.campaigns = list(campaigns)
        self.colleagues = list(colleagues)
        self.visit_modes = lookups.visit_modes()
        self.willingness_levels = lookups.willingness_levels()
        self.mode_code.choices = lookups.choices(self.visit_modes)
        self.campaign_id.choices = [(str(c.id), c.name) for c in self.campaigns]
        self.rm_id.choices = list(self.colleagues)
        self.next_step_owner_id.choices = [("", "—"), *self.colleagues]
        self.show_choices()
        self.willingness_code.choices = lookups.choices(self.willingness_levels, empty="—")
        if self.is_submitted():
            return
        if visit is None:
            self.visited_on.data = today_local()
            self.mode_code.data = "on_site"
            self.rm_id.data = str(user.id)
            self.next_step_owner_id.data = str(user.id)
            if default_campaign is not None:
                self.campaign_id.data = str(default_campaign.id)
        else:
            self.campaign_id.data = str(visit.campaign_id)
            self.rm_id.data = str(visit.rm_id)
            self.contact_id.data = str(visit.contact_id) if visit.contact_id else ""
            self.companion_ids.data = [c.id for c in visit.companions]
            self.need_amount_wan.data = fen_to_wan(visit.need_amount_fen)
            self.next_step_owner_id.data = str(visit.next_step_owner_id) if visit.next_step_owner_id else ""
            self.willingness_code.data = visit.willingness_code or ""
            self.version.data = visit.version

    def show_choices(self, *, contacts=(), bureau_staff=()) -> None:
        """Add the choices that are shown but never checked (``validate_choice=False``; the save checks the ids):
        the firm's contacts and bureau companions. Only a rendered form needs them, not a save that succeeds."""
        self.companion_ids.choices = [(int(value), name) for value, name in self.colleagues] + [
            (u.id, f"{u.display_name}（{u.org.display_name}）") for u in bureau_staff]
        self.contact_id.choices = [("", "—")] + [(str(c.id), f"{c.name} {c.title}".strip()) for c in contacts]

    def service_data(self) -> dict:
        amount = self.need_amount_wan.data
        return {
            "campaign_id": self.campaign_id.data, "visited_on": self.visited_on.data, "mode_code": self.mode_code.data,
            "rm_id": self.rm_id.data, "companion_ids": self.companion_ids.data or [],
            "contact_id": self.contact_id.data or None, "summary": self.summary.data or "",
            "willingness_code": self.willingness_code.data or None,
            "need_amount_fen": wan_to_fen(amount) if amount not in (None, "") else None,
            "need_term_months": self.need_term_months.data, "need_purpose": self.need_purpose.data,
            "need_guarantee": self.need_guarantee.data, "wants_subsidy": self.wants_subsidy.data,
            "wants_risk_compensation": self.wants_risk_compensation.data, "next_step": self.next_step.data,
            "next_step_owner_id": self.next_step_owner_id.data or None, "next_step_due_on": self.next_step_due_on.data,
        }


class FollowUpForm(Form):
    title = StringField(_l("What needs doing"), validators=[DataRequired(), Length(max=300)])
    due_on = DateField(_l("Due on"), validators=[DataRequired()])
    assignee_id = SelectField(_l("Assignee"), validators=[DataRequired()])
    submit = SubmitField(_l("Save"))


class FollowUpDoneForm(Form):
    outcome = TextAreaField(_l("Outcome"), validators=[Optional(), Length(max=2000)], render_kw={"rows": 2})
    version = HiddenField()
    submit = SubmitField(_l("Mark done"))


class ReassignForm(Form):
    assignee_id = SelectField(_l("Hand over to"), validators=[DataRequired()])
    version = HiddenField()
    submit = SubmitField(_l("Reassign"))
