"""Visit logging (phone first), the visit list, and follow-ups: mine, the bank's overdue ones, done, reassign."""
from __future__ import annotations

import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy.orm import joinedload, selectinload

from crm.auth.decorators import bank_user_required, role_required
from crm.auth.forms import EmptyForm
from crm.auth.models import Role, User
from crm.core.formatting import today_local
from crm.core.forms import perform, save_form
from crm.core.navigation import add_nav
from crm.core.scoping import get_or_404
from crm.core.urls import safe_path
from crm.core.validators import row_id
from crm.extensions import db
from crm.firms import lookups, queries
from crm.firms.models import Firm
from crm.firms.services import bank_user_choices, bank_users, visible_contacts
from crm.i18n import lazy_gettext as _l
from crm.orgs.models import Organisation
from crm.visits import bp, services
from crm.visits.forms import FollowUpDoneForm, FollowUpForm, ReassignForm, VisitForm
from crm.visits.models import FollowUp, Visit, visit_companion

BANK_ROLES = {"rm", "bank_manager"}
add_nav("visits.create", _l("New visit"), "journal-plus", roles=BANK_ROLES, order=21)
add_nav("visits.my_followups", _l("My follow-ups"), "alarm", roles=BANK_ROLES, order=22)
add_nav("visits.index", _l("Visits"), "journal-text", order=23)
add_nav("visits.overdue", _l("Overdue in the bank"), "exclamation-triangle", roles={"bank_manager"}, order=24)


def _bureau_staff() -> list[User]:
    return list(db.session.scalars(sa.select(User).where(User.role == Role.BUREAU, User.is_active_flag.is_(True))
                                   .order_by(User.name, User.id).options(joinedload(User.org))))


def _visit_form(visit=None) -> VisitForm:
    """The visit form with what a save checks against, each loaded once: the campaigns, modes and willingness
    levels as rows the save finds again in the session, the bank's people as ``(id, name)`` choices (the save gets
    the chosen ones)."""
    new_page = visit is None and request.method == "GET"
    campaigns = queries.campaigns_for(current_user)
    return VisitForm(
        user=current_user, visit=visit, campaigns=campaigns, colleagues=bank_user_choices(current_user.bank_id),
        default_campaign=queries.default_campaign(current_user, campaigns=campaigns) if new_page else None,
    )


def _render_form(form: VisitForm, firm, visit=None, q="", results=(), status=200):
    """The visit page, with the choices that are only shown (the firm's contacts, bureau companions)."""
    form.show_choices(contacts=visible_contacts(firm) if firm else [], bureau_staff=_bureau_staff())
    return render_template("visits/form.html", form=form, firm=firm, visit=visit, q=q, results=results), status


def _firm_from(value):
    ident = row_id(value)
    return db.session.get(Firm, ident) if ident is not None else None


def _search_firms(term: str) -> list[Firm]:
    term = (term or "").strip()[:60]
    if not term:
        return []
    return list(db.session.scalars(sa.select(Firm).where(sa.or_(
        Firm.name.contains(term, autoescape=True), Firm.credit_code.contains(term.upper(), autoescape=True),
    )).order_by(Firm.name, Firm.id).limit(10)))


@bp.route("/new", methods=["GET", "POST"])
@bank_user_required
def create():
    """Log a visit: the firm by type-ahead (or a plain search without JS), sensible defaults, one thumb."""
    firm = _firm_from(request.form.get("firm_id") if request.method == "POST" else request.args.get("firm_id"))
    form = _visit_form()
    q = request.args.get("q", "")
    results = _search_firms(q) if request.method == "GET" else []
    # read before the commit expires the firm, so the message and redirect do not load it (and the visit) again
    firm_name, firm_id = (firm.name, firm.id) if firm is not None else (None, None)

    def create_visit():
        if firm is None:
            raise services.VisitError(_("Choose the firm."), field="firm_id")
        return services.create_visit(firm, form.service_data(), user=current_user, campaigns=form.campaigns)

    return save_form(
        form, create_visit,
        render=lambda status: _render_form(form, firm, q=q, results=results, status=status),
        saved=lambda _visit: _("The visit to %(name)s was saved.", name=firm_name),
        next_url=lambda _visit: url_for("firms.show", firm_id=firm_id))


@bp.route("/<int:visit_id>/edit", methods=["GET", "POST"])
@bank_user_required
def edit(visit_id):
    """Edit a visit of the user's bank; a stale version is refused with 409."""
    visit = get_or_404(Visit, visit_id)
    form = _visit_form(visit)
    firm_id = visit.firm_id  # read before the commit expires the visit, so the redirect does not load it again
    return save_form(
        form, lambda: services.update_visit(visit, form.service_data(), user=current_user, version=form.version.data,
                                            campaigns=form.campaigns),
        render=lambda status: _render_form(form, visit.firm, visit, status=status),
        saved=_("Saved."), next_url=lambda _v: url_for("firms.show", firm_id=firm_id))


@bp.route("/<int:visit_id>/delete", methods=["POST"])
@bank_user_required
def delete(visit_id):
    """Remove a visit of the user's bank (hidden and audited)."""
    visit = get_or_404(Visit, visit_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    firm_id = visit.firm_id
    services.delete_visit(visit, user=current_user)
    db.session.commit()
    flash(_("The visit was removed."), "success")
    return redirect(url_for("firms.show", firm_id=firm_id))


@bp.route("/<int:visit_id>")
@login_required
def show(visit_id):
    """One visit; the summary only for those who may read it."""
    visit = get_or_404(Visit, visit_id)
    return render_template("visits/show.html", visit=visit, notes=visit.can_read_notes(current_user),
                           label=lookups.label, button_form=EmptyForm())


@bp.route("/")
@login_required
def index():
    """Visits the viewer may see, newest first, keyset-paginated (``mine=1`` for the user's own)."""
    stmt = sa.select(Visit).where(Visit.is_deleted.is_(False))
    mine = request.args.get("mine") == "1"
    if mine:
        stmt = stmt.where(sa.or_(Visit.rm_id == current_user.id,
                                 Visit.id.in_(sa.select(visit_companion.c.visit_id)
                                              .where(visit_companion.c.user_id == current_user.id))))
    cursor = queries.decode_cursor(request.args.get("after"), "date")
    if cursor is not None:
        day, ident = cursor
        stmt = stmt.where(sa.or_(Visit.visited_on < day, sa.and_(Visit.visited_on == day, Visit.id < ident)))
    items, next_cursor = queries.keyset_page(
        stmt.order_by(Visit.visited_on.desc(), Visit.id.desc()).options(
            selectinload(Visit.firm), selectinload(Visit.rm), selectinload(Visit.companions)),
        50, lambda v: [v.visited_on.isoformat(), v.id])
    return render_template("visits/index.html", visits=items, next_cursor=next_cursor, mine=mine,
                           first=cursor is None)


# --------------------------------------------------------------------------------------------------
# Follow-ups
# --------------------------------------------------------------------------------------------------


def _reassign_form(fu=None) -> ReassignForm:
    form = ReassignForm()
    form.assignee_id.choices = bank_user_choices(current_user.bank_id)
    if fu is not None and not form.is_submitted():
        form.assignee_id.data = str(fu.assignee_id)
        form.version.data = fu.version
    return form


@bp.route("/followups/mine")
@bank_user_required
def my_followups():
    """My open follow-ups: overdue (red, first), due today, this week, later."""
    today = today_local()
    groups = services.my_follow_ups(current_user, today)
    return render_template("visits/my_followups.html", groups=groups, today=today)


@bp.route("/followups/overdue")
@role_required(Role.BANK_MANAGER)
def overdue():
    """The bank manager's view: every overdue follow-up of the bank, and each branch's count."""
    today = today_local()
    branch_code = (request.args.get("branch") or "").strip()[:40]
    branch = db.session.scalar(sa.select(Organisation).where(
        Organisation.code == branch_code, sa.or_(Organisation.id == current_user.bank_id,
                                                 Organisation.parent_id == current_user.bank_id))) \
        if branch_code else None
    page, per_branch = services.overdue_in_bank(current_user.bank_id, today, branch_id=branch.id if branch else None,
                                                after=request.args.get("after"))
    here = {"branch": branch.code} if branch else {}
    return render_template("visits/overdue.html", page=page, per_branch=per_branch, today=today, branch=branch,
                           first_url=None if page.is_first else url_for("visits.overdue", **here),
                           next_url=url_for("visits.overdue", after=page.next_cursor, **here) if page.next_cursor
                           else None)


@bp.route("/followups/new", methods=["GET", "POST"])
@bank_user_required
def followup_create():
    """Book a follow-up on a firm for a colleague of the same bank."""
    firm = get_or_404(Firm, request.args.get("firm_id"))
    form = FollowUpForm()
    colleagues = bank_users(current_user.bank_id)
    form.assignee_id.choices = [(str(u.id), u.display_name) for u in colleagues]
    if not form.is_submitted():
        form.assignee_id.data = str(current_user.id)

    def book():
        assignee = next((u for u in colleagues if str(u.id) == form.assignee_id.data), None)
        return services.create_follow_up(firm, title=form.title.data, due_on=form.due_on.data, assignee=assignee,
                                         user=current_user)

    return save_form(
        form, book, render=lambda status: (render_template("visits/followup_form.html", form=form, firm=firm), status),
        saved=_("The follow-up was booked."), next_url=lambda _fu: url_for("firms.show", firm_id=firm.id))


def _back(default_endpoint="visits.my_followups"):
    from crm.core.urls import redirect_back

    return redirect_back(request.form.get("next"), default_endpoint)


@bp.route("/followups/<int:fu_id>/done", methods=["POST"])
@bank_user_required
def followup_done(fu_id):
    """Mark a follow-up of the bank done, with an outcome note."""
    fu = get_or_404(FollowUp, fu_id)
    form = FollowUpDoneForm()
    if not form.validate_on_submit():
        abort(400)
    return perform(lambda: services.complete_follow_up(fu, form.outcome.data, user=current_user,
                                                       version=form.version.data),
                   saved=_("Marked done."), back=_back)


@bp.route("/followups/<int:fu_id>/reassign", methods=["GET", "POST"])
@bank_user_required
def followup_reassign(fu_id):
    """Hand a follow-up to a colleague of the same bank: its own page, so the lists of follow-ups carry no list of
    the bank's colleagues for each item (50 items x a bank's users: 488 KB for 130 users at scale 1)."""
    fu = get_or_404(FollowUp, fu_id)
    form = _reassign_form(fu)
    if request.method == "GET":
        return render_template("visits/reassign.html", fu=fu, form=form, today=today_local(),
                               next=safe_path(request.args.get("next"), "visits.my_followups"))
    if not form.validate_on_submit():
        abort(400)
    assignee = db.session.get(User, int(form.assignee_id.data))
    return perform(lambda: services.reassign_follow_up(fu, assignee, user=current_user, version=form.version.data),
                   saved=_("Reassigned to %(name)s.", name=assignee.display_name), back=_back)

from crm.visits import ledger  # noqa: E402,F401  (registers the visits ledger with the import framework)
