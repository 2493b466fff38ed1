"""Administration: organisations and campaigns (admin), users (admin, and bank leads for their own bank)."""
import sqlalchemy as sa
from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from crm.auth import services as accounts
from crm.auth.decorators import role_required
from crm.auth.forms import EmptyForm
from crm.auth.models import Role, User
from crm.core.navigation import add_nav
from crm.extensions import db
from crm.i18n import lazy_gettext as _l
from crm.orgs import bp, services
from crm.orgs.forms import CampaignForm, OrgForm, UserForm
from crm.orgs.models import Campaign, Organisation, OrgKind

add_nav("orgs.users", _l("Users"), "people", roles={"admin", "bank_manager"}, order=90)
add_nav("orgs.organisations", _l("Organisations"), "building", roles={"admin"}, order=91)
add_nav("orgs.campaigns", _l("Campaigns"), "flag", roles={"admin", "bureau"}, order=92)

ROLE_CHOICES = [(r.value, r.value) for r in Role]


def _manageable_orgs():
    """Organisations whose users the current user may manage: all (admin) or their bank and its branches."""
    q = sa.select(Organisation).order_by(Organisation.code)
    if current_user.role == Role.BANK_MANAGER:
        q = q.where(sa.or_(Organisation.id == current_user.bank_id, Organisation.parent_id == current_user.bank_id))
    return db.session.scalars(q).all()


def _manageable_user_or_404(user_id: int) -> User:
    """:raise 404: when the user does not exist or belongs to another bank."""
    user = db.session.get(User, user_id)
    if user is None or (current_user.role == Role.BANK_MANAGER and user.bank_id != current_user.bank_id):
        abort(404)
    return user


@bp.route("/users")
@role_required(Role.ADMIN, Role.BANK_MANAGER)
def users():
    """Accounts the viewer manages."""
    orgs = _manageable_orgs()
    q = sa.select(User).where(User.org_id.in_([o.id for o in orgs])).order_by(User.org_id, User.username)
    return render_template("orgs/users.html", users=db.session.scalars(q).all(), form=EmptyForm())


@bp.route("/users/new", methods=["GET", "POST"])
@role_required(Role.ADMIN, Role.BANK_MANAGER)
def new_user():
    """Create an account; the one-time password is shown once."""
    form = UserForm()
    form.org.choices = [(o.id, f"{o.code} · {o.name}") for o in _manageable_orgs()]
    roles = [Role.RM, Role.BANK_MANAGER] if current_user.role == Role.BANK_MANAGER else list(Role)
    form.role.choices = [(r.value, str(_role_label(r))) for r in roles]
    if form.validate_on_submit():
        org = db.session.get(Organisation, form.org.data)
        password = accounts.generate_password()
        try:
            user = accounts.create_user(username=form.username.data, role=form.role.data, org=org,
                                        password=password, name=form.name.data or "", actor=current_user)
        except accounts.AccountError as exc:
            db.session.rollback()
            form.username.errors.append(str(exc))
        else:
            user.must_change_password = True
            db.session.commit()
            return render_template("orgs/password_once.html", user=user, password=password)
    return render_template("orgs/user_form.html", form=form)


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@role_required(Role.ADMIN, Role.BANK_MANAGER)
def toggle_user(user_id):
    """Deactivate or reactivate an account; deactivation ends its sessions at once."""
    user = _manageable_user_or_404(user_id)
    if EmptyForm().validate_on_submit():
        if user.id == current_user.id:
            flash(_("You cannot deactivate your own account."), "warning")
        else:
            accounts.set_active(user, not user.is_active, actor=current_user)
            db.session.commit()
            flash(_("Account %(u)s updated.", u=user.username), "success")
    return redirect(url_for("orgs.users"))


@bp.route("/users/<int:user_id>/reset", methods=["POST"])
@role_required(Role.ADMIN, Role.BANK_MANAGER)
def reset_password(user_id):
    """Give an account a new one-time password, shown once; its sessions end."""
    user = _manageable_user_or_404(user_id)
    if not EmptyForm().validate_on_submit():
        return redirect(url_for("orgs.users"))
    password = accounts.reset_password(user, actor=current_user)
    db.session.commit()
    return render_template("orgs/password_once.html", user=user, password=password)


@bp.route("/organisations", methods=["GET", "POST"])
@role_required(Role.ADMIN)
def organisations():
    """Banks, branches, the bureau, streets and parks."""
    form = OrgForm()
    banks = db.session.scalars(sa.select(Organisation).where(Organisation.kind == OrgKind.BANK,
                                                             Organisation.parent_id.is_(None))).all()
    form.parent.choices = [(0, "—")] + [(b.id, b.name) for b in banks]
    if form.validate_on_submit():
        parent = db.session.get(Organisation, form.parent.data) if form.parent.data else None
        try:
            services.create_org(code=form.code.data, name=form.name.data, kind=form.kind.data, parent=parent,
                                short_name=form.short_name.data or "")
        except services.OrgError as exc:
            db.session.rollback()
            form.code.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Organisation created."), "success")
            return redirect(url_for("orgs.organisations"))
    top = db.session.scalars(sa.select(Organisation).where(Organisation.parent_id.is_(None))
                             .order_by(Organisation.kind, Organisation.code)).all()
    return render_template("orgs/organisations.html", orgs=top, form=form)


@bp.route("/campaigns", methods=["GET", "POST"])
@role_required(Role.ADMIN, Role.BUREAU)
def campaigns():
    """Campaigns; the administrator creates them."""
    form = CampaignForm()
    form.orgs.choices = [(o.id, o.name) for o in db.session.scalars(
        sa.select(Organisation).where(Organisation.parent_id.is_(None)).order_by(Organisation.code))]
    if current_user.role == Role.ADMIN and form.validate_on_submit():
        orgs = [db.session.get(Organisation, i) for i in form.orgs.data]
        try:
            services.create_campaign(code=form.code.data, name=form.name.data, district=form.district.data,
                                     start_on=form.start_on.data, end_on=form.end_on.data, orgs=orgs)
        except services.OrgError as exc:
            db.session.rollback()
            form.end_on.errors.append(str(exc))
        else:
            db.session.commit()
            flash(_("Campaign created."), "success")
            return redirect(url_for("orgs.campaigns"))
    items = db.session.scalars(sa.select(Campaign).order_by(Campaign.start_on.desc())).all()
    return render_template("orgs/campaigns.html", campaigns=items, form=form)


def _role_label(role):
    from crm.core.navigation import ROLE_LABELS

    return ROLE_LABELS.get(str(role.value), role.value)
