"""Events views: the event pages, registrations, invitations, the check-in desk, exports and public sign-up."""
from __future__ import annotations

import sqlalchemy as sa
from flask import (abort, current_app, flash, jsonify, redirect, render_template, request,
                   stream_with_context, url_for)
from flask_babel import gettext as _
from flask_login import current_user

from crm.auth.decorators import role_required
from crm.auth.forms import EmptyForm
from crm.auth.models import Role, User
from crm.core.db import utcnow
from crm.core.formatting import fen_to_wan, today_local, wan_to_fen
from crm.core.forms import save_form
from crm.core.navigation import add_nav
from crm.core.scoping import SYSTEM, get_or_404, scoped
from crm.core.spreadsheets import send_csv, send_xlsx
from crm.events import bp, services
from crm.events.forms import (
    ATTENDANCE_LABELS,
    KIND_LABELS,
    REG_STATUS_LABELS,
    SOURCE_LABELS,
    STATUS_LABELS,
    EventForm,
    InviteFilterForm,
    InviteForm,
    PublicRegistrationForm,
    RegistrationEditForm,
    RegistrationForm,
    WalkInForm,
    choices,
)
from crm.events.models import CheckinMethod, Event, EventStatus, Registration, RegistrationSource
from crm.events.qr import qr_response
from crm.extensions import db, limiter
from crm.i18n import lazy_gettext as _l
from crm.orgs.models import Campaign

ORGANISER_ROLES = (Role.RM, Role.BANK_MANAGER, Role.BUREAU, Role.ADMIN)
organiser_required = role_required(*ORGANISER_ROLES)

add_nav("events.index", _l("Events"), "calendar-event", roles={r.value for r in ORGANISER_ROLES}, order=30)


@bp.app_context_processor
def _labels():
    return {"EVENT_KIND_LABELS": KIND_LABELS, "EVENT_STATUS_LABELS": STATUS_LABELS,
            "REG_SOURCE_LABELS": SOURCE_LABELS, "REG_STATUS_LABELS": REG_STATUS_LABELS,
            "may_write_event": may_write_event}


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.headers.get("X-Requested-With") == "fetch"


def _user():
    return current_user._get_current_object()


def may_write_event(event: Event) -> bool:
    """The bureau co-organises events: it writes only those it organises; a bank-only event is the banks'.

    Pages use it (as ``may_write_event`` in templates) to show write buttons only to those who may press them.
    """
    user = _user()
    return not (user.is_bureau and not services.is_organiser(user, event))


def _may_write(event: Event) -> None:
    """403 for a write the viewer may not make (see :func:`may_write_event`)."""
    if not may_write_event(event):
        abort(403)


# ---------------------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------------------


@bp.route("/")
@organiser_required
def index():
    """Upcoming and past events the viewer may see."""
    status = request.args.get("status", "")
    if status not in STATUS_LABELS:
        status = ""
    q = (request.args.get("q") or "").strip()[:60]
    upcoming, past = services.event_lists(today_local(), status=status or None, q=q,
                                          upcoming_after=request.args.get("upcoming_after"),
                                          past_after=request.args.get("past_after"))
    counts = {}
    ids = [e.id for e in upcoming.items + past.items]
    if ids:
        rows = db.session.execute(
            sa.select(Registration.event_id, sa.func.count(Registration.id),
                      sa.func.count(Registration.id).filter(Registration.checked_in_at.is_not(None)))
            .where(Registration.event_id.in_(ids), Registration.status != "cancelled")
            .group_by(Registration.event_id)).all()
        counts = {r[0]: (r[1], r[2]) for r in rows}
    # each list's "first page" and "next page" links; paging one list keeps the other where it is
    here = {k: v for k, v in (("q", q), ("status", status)) if v}
    cursors = {"upcoming_after": request.args.get("upcoming_after"), "past_after": request.args.get("past_after")}
    links = {}
    for name, page, param in (("upcoming", upcoming, "upcoming_after"), ("past", past, "past_after")):
        keep = {**here, **{k: v for k, v in cursors.items() if v and k != param}}
        links[name] = {"first": None if page.is_first else url_for("events.index", **keep),
                       "next": url_for("events.index", **keep, **{param: page.next_cursor}) if page.next_cursor
                       else None}
    return render_template("events/index.html", upcoming=upcoming, past=past, status=status, q=q, counts=counts,
                           links=links)


def _fill_event_choices(form: EventForm, user) -> None:
    from crm.core.models import Industry

    form.campaign_id.choices = choices((c.id, f"{c.name}（{c.code}）") for c in db.session.scalars(
        sa.select(Campaign).order_by(Campaign.start_on.desc(), Campaign.code)))
    kind_names = {"bank": _("Bank"), "bureau": _("Bureau"), "street": _("Sub-district"), "park": _("Park")}
    form.organisers.choices = choices((o.id, f"{o.display_name}（{kind_names.get(o.kind.value, o.kind.value)}）")
                                      for o in services.organiser_choices())
    form.industries.choices = choices((i.code, i.name_zh) for i in db.session.scalars(
        sa.select(Industry).order_by(Industry.sort_order, Industry.code)))
    staff_q = sa.select(User).where(User.role.in_([Role.RM, Role.BANK_MANAGER]), User.is_active_flag.is_(True))
    if user.bank_id is not None:
        staff_q = staff_q.where(User.bank_id == user.bank_id)
    form.staff.choices = choices((u.id, f"{u.display_name}（{u.org.display_name}）") for u in db.session.scalars(
        staff_q.order_by(User.org_id, User.username)))


def _event_data(form: EventForm) -> services.EventData:
    def fen(value):
        return wan_to_fen(value) if value is not None else 0

    return services.EventData(
        code=form.code.data or "", title=form.title.data, kind=form.kind.data, held_on=form.held_on.data,
        campaign_id=form.campaign_id.data, start_time=form.start_time.data, end_time=form.end_time.data,
        venue=form.venue.data or "", capacity=form.capacity.data, status=form.status.data,
        description=form.description.data or "", organiser_ids=form.organisers.data or [],
        industry_codes=form.industries.data or [], staff_ids=form.staff.data or [],
        deals_signed=form.deals_signed.data or 0, deals_signed_fen=fen(form.deals_signed_wan.data),
        intentions=form.intentions.data or 0, intentions_fen=fen(form.intentions_wan.data),
    )


@bp.route("/new", methods=["GET", "POST"])
@organiser_required
def create():
    user = _user()
    form = EventForm()
    _fill_event_choices(form, user)
    if request.method == "GET":
        if user.bank_id is not None:
            form.organisers.data = [user.org_id]
        elif user.is_bureau:
            form.organisers.data = [user.org_id]
        if form.campaign_id.choices:
            form.campaign_id.data = int(form.campaign_id.choices[0].value)
    return save_form(
        form, lambda: services.create_event(_event_data(form), user),
        render=lambda status: (render_template("events/form.html", form=form, event=None), status),
        saved=lambda event: _("Event %(code)s created.", code=event.code),
        next_url=lambda event: url_for("events.detail", event_id=event.id))


@bp.route("/<int:event_id>/edit", methods=["GET", "POST"])
@organiser_required
def edit(event_id):
    user = _user()
    event = get_or_404(Event, event_id)
    _may_write(event)
    form = EventForm(obj=event if request.method == "GET" else None)
    _fill_event_choices(form, user)
    if request.method == "GET":
        form.organisers.data = [o.id for o in event.organisers]
        form.industries.data = [i.code for i in event.industries]
        form.staff.data = [u.id for u in event.staff]
        form.kind.data = event.kind.value
        form.status.data = event.status.value
        form.deals_signed_wan.data = fen_to_wan(event.deals_signed_fen)
        form.intentions_wan.data = fen_to_wan(event.intentions_fen)
        form.version.data = str(event.version)
    return save_form(
        form, lambda: services.update_event(event, _event_data(form), user, version=form.version.data or None),
        render=lambda status: (render_template("events/form.html", form=form, event=event), status),
        saved=_("Event saved."), next_url=lambda _r: url_for("events.detail", event_id=event.id))


@bp.route("/<int:event_id>")
@organiser_required
def detail(event_id):
    user = _user()
    event = get_or_404(Event, event_id)
    regs = services.search_registrations(event, request.args.get("q", "")[:60], limit=1000)
    return render_template("events/detail.html", event=event, regs=regs, counts=services.desk_counts(event),
                           full=services.may_see_full_mobiles(user, event), button=EmptyForm(),
                           places_left=services.places_left(event), q=request.args.get("q", "")[:60])


@bp.route("/<int:event_id>/publish", methods=["POST"])
@organiser_required
def publish(event_id):
    event = get_or_404(Event, event_id)
    _may_write(event)
    form = EmptyForm()
    if form.validate_on_submit():
        if request.form.get("action") == "unpublish":
            services.unpublish(event, _user())
            flash(_("The public registration page is closed."), "info")
        else:
            services.publish(event, _user())
            flash(_("The public registration page is open."), "success")
        db.session.commit()
    return redirect(url_for("events.poster", event_id=event.id) if event.public_token
                    else url_for("events.detail", event_id=event.id))


@bp.route("/<int:event_id>/poster")
@organiser_required
def poster(event_id):
    """The printable public link and its QR code."""
    event = get_or_404(Event, event_id)
    link = url_for("events.public_register", token=event.public_token, _external=True) if event.public_token else None
    return render_template("events/poster.html", event=event, link=link, button=EmptyForm())


@bp.route("/<int:event_id>/qr.<kind>")
@organiser_required
def public_qr(event_id, kind):
    event = get_or_404(Event, event_id)
    if not event.public_token or kind not in ("svg", "png"):
        abort(404)
    return qr_response(url_for("events.public_register", token=event.public_token, _external=True), kind)


# ---------------------------------------------------------------------------------------------------------
# Registrations
# ---------------------------------------------------------------------------------------------------------


def _bank_choices():
    return choices([(0, _("No preference"))] + [(o.id, o.display_name) for o in services.bank_choices()])


def _firm_choices(selected_id=None):
    from crm.firms.models import Firm

    options = [(0, _("— choose a firm —"))]
    if selected_id:
        f = db.session.get(Firm, selected_id)
        if f is not None:
            options.append((f.id, f"{f.name}（{f.credit_code}）"))
    return choices(options)


@bp.route("/<int:event_id>/registrations/new", methods=["GET", "POST"])
@organiser_required
def add_registration(event_id):
    from crm.firms.models import Firm

    user = _user()
    event = get_or_404(Event, event_id)
    _may_write(event)
    form = RegistrationForm()
    form.preferred_bank_id.choices = _bank_choices()
    form.firm_id.choices = _firm_choices(form.firm_id.data if request.method == "POST" else None)
    def register():
        if form.firm_id.data:
            firm = db.session.get(Firm, form.firm_id.data)
            if firm is None:
                raise services.EventError(_("Firm not found."), field="firm_id")
        else:
            firm = services.get_or_create_firm(form.credit_code.data, form.firm_name.data, user)
        return services.add_registration(event, firm, services.PersonData(
            person_name=form.person_name.data, person_title=form.person_title.data, mobile=form.mobile.data,
            need_summary=form.need_summary.data or "", preferred_bank_id=form.preferred_bank_id.data or None,
            source=RegistrationSource(form.source.data), status=form.status.data,
            remarks=form.remarks.data or ""), user)

    return save_form(
        form, register,
        render=lambda status: (render_template("events/registration_form.html", form=form, event=event, reg=None,
                                               places_left=services.places_left(event)), status),
        saved=lambda reg: _("%(name)s is registered.", name=reg.person_name),
        next_url=lambda _r: url_for("events.detail", event_id=event.id))


@bp.route("/<int:event_id>/firms.json")
@organiser_required
def firm_search(event_id):
    """Autocomplete for the firm picker (shared master records: names and codes only)."""
    from crm.firms.models import Firm

    get_or_404(Event, event_id)
    q = (request.args.get("q") or "").strip()[:60]
    if len(q) < 1:
        return jsonify(items=[])
    firms = db.session.scalars(sa.select(Firm).where(sa.or_(
        Firm.name.contains(q, autoescape=True), Firm.credit_code.contains(q.upper(), autoescape=True)))
        .order_by(Firm.name).limit(20))
    return jsonify(items=[{"value": f.id, "text": f"{f.name}（{f.credit_code}）"} for f in firms])


def _get_reg(event_id, reg_id) -> tuple[Event, Registration]:
    event = get_or_404(Event, event_id)
    reg = get_or_404(Registration, reg_id)
    if reg.event_id != event.id:
        abort(404)
    return event, reg


@bp.route("/<int:event_id>/registrations/<int:reg_id>/edit", methods=["GET", "POST"])
@organiser_required
def edit_registration(event_id, reg_id):
    user = _user()
    event, reg = _get_reg(event_id, reg_id)
    _may_write(event)
    full = services.may_see_full_mobiles(user, event)
    form = RegistrationEditForm(obj=reg if request.method == "GET" else None)
    form.preferred_bank_id.choices = _bank_choices()
    if request.method == "GET":
        form.source.data = reg.source.value
        form.status.data = reg.status.value
        form.preferred_bank_id.data = reg.preferred_bank_id or 0
        form.version.data = str(reg.version)
        form.mobile.data = services.show_mobile(reg.mobile, full)
    elif not full and request.form.get("mobile", "") == services.show_mobile(reg.mobile, False):
        # the masked number came back unchanged: keep the stored one
        form.mobile.raw_data = [reg.mobile]
        form.mobile.data = reg.mobile
    return save_form(
        form, lambda: services.update_registration(reg, services.PersonData(
            person_name=form.person_name.data, person_title=form.person_title.data, mobile=form.mobile.data,
            need_summary=form.need_summary.data or "", preferred_bank_id=form.preferred_bank_id.data or None,
            source=RegistrationSource(form.source.data), status=form.status.data,
            remarks=form.remarks.data or ""), user, absence_reason=form.absence_reason.data or "",
            version=form.version.data or None),
        render=lambda status: (render_template("events/registration_form.html", form=form, event=event, reg=reg,
                                               places_left=None), status),
        saved=_("Registration saved."), next_url=lambda _r: url_for("events.detail", event_id=event.id))


@bp.route("/<int:event_id>/registrations/<int:reg_id>/confirmation")
@organiser_required
def confirmation(event_id, reg_id):
    """A printable confirmation for one registrant, with the check-in QR code."""
    event, reg = _get_reg(event_id, reg_id)
    return render_template("events/confirmation.html", event=event, reg=reg, public=False,
                           qr_url=url_for("events.public_confirmation_qr", token=reg.checkin_token, kind="svg"))


# ---------------------------------------------------------------------------------------------------------
# Bulk invitation
# ---------------------------------------------------------------------------------------------------------


def _fill_filter_choices(form: InviteFilterForm) -> None:
    from crm.core.models import Area, Industry, Street

    form.industry.choices = choices([("", _("Any industry"))] + [(i.code, i.name_zh) for i in db.session.scalars(
        sa.select(Industry).order_by(Industry.sort_order, Industry.code))])
    form.area.choices = choices([("", _("Any district"))] + [(a.code, a.name) for a in db.session.scalars(
        sa.select(Area).order_by(Area.sort_order, Area.code))])
    streets = sa.select(Street).order_by(Street.area_code, Street.sort_order)
    if form.area.data:
        streets = streets.where(Street.area_code == form.area.data)
    form.street_id.choices = choices([("", _("Any sub-district"))] + [(s.id, s.name) for s in db.session.scalars(streets)])


@bp.route("/<int:event_id>/invite", methods=["GET", "POST"])
@organiser_required
def invite(event_id):
    user = _user()
    event = get_or_404(Event, event_id)
    _may_write(event)
    flt_form = InviteFilterForm(request.args)
    _fill_filter_choices(flt_form)
    form = InviteForm()
    searched = any(k in request.args for k in ("industry", "area", "street_id", "q", "never_reached", "high_tech"))
    flt = services.FirmFilter(industry=flt_form.industry.data or "", area=flt_form.area.data or "",
                              street_id=flt_form.street_id.data if flt_form.street_id.data else None,
                              q=(flt_form.q.data or "").strip(), never_reached=bool(flt_form.never_reached.data),
                              high_tech=bool(flt_form.high_tech.data))
    if request.method == "POST" and form.validate_on_submit():
        try:
            result = services.invite_firms(event, form.firm_ids.data or [], user)
        except services.EventError as err:
            db.session.rollback()
            flash(str(err), "danger")
        else:
            db.session.commit()
            if result.invited:
                flash(_("%(n)d firms invited.", n=len(result.invited)), "success")
            for firm, reason in result.skipped[:20]:
                flash(_("%(firm)s skipped: %(reason)s", firm=firm.name, reason=reason), "warning")
            if not result.invited and not result.skipped:
                flash(_("Select at least one firm."), "warning")
            return redirect(url_for("events.detail", event_id=event.id))
    firms = services.filter_firms(event, flt) if searched else []
    contacts = {f.id: services.invite_contact(f) for f in firms}
    return render_template("events/invite.html", event=event, flt_form=flt_form, form=form, firms=firms,
                           contacts=contacts, searched=searched, places_left=services.places_left(event),
                           full=services.may_see_full_mobiles(user, event))


# ---------------------------------------------------------------------------------------------------------
# The check-in desk
# ---------------------------------------------------------------------------------------------------------


@bp.route("/<int:event_id>/desk")
@organiser_required
def desk(event_id):
    user = _user()
    event = get_or_404(Event, event_id)
    q = (request.args.get("q") or "").strip()[:60]
    regs = services.search_registrations(event, q)
    return render_template("events/desk.html", event=event, regs=regs, q=q, counts=services.desk_counts(event),
                           full=services.may_see_full_mobiles(user, event), button=EmptyForm(),
                           walk_in=WalkInForm(formdata=None))


@bp.route("/<int:event_id>/desk/rows")
@organiser_required
def desk_rows(event_id):
    """The desk's result list for a search (a fragment for fetch())."""
    user = _user()
    event = get_or_404(Event, event_id)
    q = (request.args.get("q") or "").strip()[:60]
    regs = services.search_registrations(event, q)
    return render_template("events/_desk_rows.html", event=event, regs=regs, q=q, button=EmptyForm(),
                           full=services.may_see_full_mobiles(user, event))


@bp.route("/<int:event_id>/desk/counts")
@organiser_required
def desk_counts(event_id):
    event = get_or_404(Event, event_id)
    return jsonify(services.desk_counts(event).as_dict())


def _desk_answer(event, reg, changed: bool, message: str, category: str = "success", status: int = 200):
    if _wants_json():
        row = render_template("events/_desk_row.html", event=event, r=reg, button=EmptyForm(),
                              full=services.may_see_full_mobiles(_user(), event))
        return jsonify(ok=status < 400, changed=changed, message=message, row=row,
                       counts=services.desk_counts(event).as_dict()), status
    flash(message, category)
    return redirect(url_for("events.desk", event_id=event.id, q=request.form.get("q", "")[:60] or None))


@bp.route("/<int:event_id>/registrations/<int:reg_id>/checkin", methods=["POST"])
@organiser_required
def checkin(event_id, reg_id):
    event, reg = _get_reg(event_id, reg_id)
    _may_write(event)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        changed = services.check_in(reg, _user(), CheckinMethod.STAFF)
    except services.EventError as err:
        db.session.rollback()
        return _desk_answer(event, reg, False, str(err), "danger", 409)
    db.session.commit()
    msg = (_("%(name)s checked in.", name=reg.person_name) if changed
           else _("%(name)s was already checked in.", name=reg.person_name))
    return _desk_answer(event, reg, changed, msg, "success" if changed else "info")


@bp.route("/<int:event_id>/registrations/<int:reg_id>/undo", methods=["POST"])
@organiser_required
def undo_checkin(event_id, reg_id):
    event, reg = _get_reg(event_id, reg_id)
    _may_write(event)
    if not EmptyForm().validate_on_submit():
        abort(400)
    changed = services.undo_check_in(reg, _user())
    db.session.commit()
    msg = (_("Check-in of %(name)s undone.", name=reg.person_name) if changed
           else _("%(name)s was not checked in.", name=reg.person_name))
    return _desk_answer(event, reg, changed, msg, "info")


@bp.route("/<int:event_id>/walk-in", methods=["POST"])
@organiser_required
def walk_in(event_id):
    user = _user()
    event = get_or_404(Event, event_id)
    _may_write(event)
    form = WalkInForm()
    return save_form(
        form, lambda: services.walk_in(event, user, person=services.PersonData(
            person_name=form.person_name.data, person_title=form.person_title.data or "",
            mobile=form.mobile.data), firm_name=form.firm_name.data, credit_code=form.credit_code.data or ""),
        render=lambda status: (render_template(
            "events/desk.html", event=event, regs=services.search_registrations(event, ""), q="",
            counts=services.desk_counts(event), full=services.may_see_full_mobiles(user, event), button=EmptyForm(),
            walk_in=form, walk_in_open=True), status),
        saved=lambda reg: _("Walk-in %(name)s added and checked in.", name=reg.person_name),
        next_url=lambda _r: url_for("events.desk", event_id=event.id))


@bp.route("/checkin/<token>", methods=["GET", "POST"])
@organiser_required
def checkin_token(token):
    """Where the QR on a confirmation leads: staff (signed in) see the person and check them in."""
    reg = services.registration_by_token(token)
    if reg is None:
        abort(404)
    event = reg.event
    if request.method == "POST":
        _may_write(event)
        if not EmptyForm().validate_on_submit():
            abort(400)
        try:
            changed = services.check_in(reg, _user(), CheckinMethod.QR)
        except services.EventError as err:
            db.session.rollback()
            flash(str(err), "danger")
        else:
            db.session.commit()
            if changed:
                flash(_("%(name)s checked in.", name=reg.person_name), "success")
            else:
                flash(_("%(name)s was already checked in.", name=reg.person_name), "info")
        return redirect(url_for("events.checkin_token", token=token))
    return render_template("events/checkin_token.html", event=event, reg=reg, button=EmptyForm(),
                           full=services.may_see_full_mobiles(_user(), event))


# ---------------------------------------------------------------------------------------------------------
# Exports and the sign-in sheet
# ---------------------------------------------------------------------------------------------------------


def _export_params(user):
    cs = services.get_column_set(user, request.args.get("set")) if request.args.get("set") else None
    if request.args.getlist("columns"):
        columns = services.clean_columns(request.args.getlist("columns"))
    elif cs is not None:
        columns = services.column_set_keys(cs)
    else:
        columns = list(services.DEFAULT_COLUMNS)
    statuses = [s for s in request.args.getlist("status") if s in REG_STATUS_LABELS]
    attendance = request.args.get("attendance", "all")
    if attendance not in services.ATTENDANCE_CHOICES:
        attendance = "all"
    return columns, services.ExportFilter(statuses=statuses, attendance=attendance), cs


@bp.route("/<int:event_id>/export", methods=["GET", "POST"])
@organiser_required
def export_page(event_id):
    """Choose columns and filters; download (a redirect to the GET download) or save the columns as a set."""
    user = _user()
    event = get_or_404(Event, event_id)
    if request.method == "POST":
        if not EmptyForm().validate_on_submit():
            abort(400)
        action = request.form.get("action", "")
        columns = services.clean_columns(request.form.getlist("columns"))
        statuses = [s for s in request.form.getlist("status") if s in REG_STATUS_LABELS]
        attendance = request.form.get("attendance", "all")
        if attendance not in services.ATTENDANCE_CHOICES:
            attendance = "all"
        if action == "save":
            try:
                cs = services.save_column_set(user, request.form.get("name", ""), columns)
            except services.EventError as err:
                db.session.rollback()
                flash(str(err), "danger")
                return redirect(url_for("events.export_page", event_id=event.id, columns=columns, status=statuses,
                                        attendance=attendance))
            db.session.commit()
            flash(_("Column set “%(name)s” saved.", name=cs.name), "success")
            return redirect(url_for("events.export_page", event_id=event.id, set=cs.id, status=statuses,
                                    attendance=attendance))
        if action in ("csv", "xlsx"):
            return redirect(url_for("events.export", event_id=event.id, fmt=action, columns=columns,
                                    status=statuses, attendance=attendance), code=303)
        abort(400)
    columns, flt, cs = _export_params(user)
    return render_template("events/export.html", event=event, columns=columns, flt=flt, current_set=cs,
                           all_columns=services.COLUMNS, sets=services.column_sets(user),
                           attendance_labels=ATTENDANCE_LABELS, full=services.may_see_full_mobiles(user, event),
                           button=EmptyForm())


def _export_limit():
    return current_app.config.get("EVENTS_EXPORT_RATE_LIMIT", "30/hour")


def _user_key():
    return f"export-user:{current_user.get_id() if current_user.is_authenticated else request.remote_addr}"


@bp.route("/<int:event_id>/export.<fmt>")
@organiser_required
@limiter.limit(_export_limit, key_func=_user_key)
def export(event_id, fmt):
    if fmt not in ("csv", "xlsx"):
        abort(404)
    user = _user()
    event = get_or_404(Event, event_id)
    columns, flt, _cs = _export_params(user)
    services.record_export(event, user, fmt=fmt, columns=columns, flt=flt,
                           rows=services.count_attendee_export(event, flt),
                           full_mobiles=services.may_see_full_mobiles(user, event))
    db.session.commit()
    # the rows stream from a cursor opened here, under this request's tenant scope, while the file is sent
    data = services.build_attendee_export(event, user, columns, flt, times_as_text=fmt == "csv")
    rows = stream_with_context(data.rows)
    if fmt == "csv":
        return send_csv(data.filename_stem + ".csv", data.headers, rows)
    return send_xlsx(data.filename_stem + ".xlsx", data.headers, rows, sheet_title="参会名单")


@bp.route("/column-sets/<int:set_id>/delete", methods=["POST"])
@organiser_required
def delete_column_set(set_id):
    user = _user()
    cs = services.get_column_set(user, set_id)
    if cs is None:
        abort(404)
    event_id = request.form.get("event_id", type=int)
    if EmptyForm().validate_on_submit():
        services.delete_column_set(user, cs)
        db.session.commit()
        flash(_("Column set deleted."), "info")
    return redirect(url_for("events.export_page", event_id=event_id) if event_id else url_for("events.index"))


@bp.route("/<int:event_id>/sign-in-sheet")
@organiser_required
def sign_in_sheet(event_id):
    """The printable A4 sign-in sheet (签到表)."""
    user = _user()
    event = get_or_404(Event, event_id)
    rows, full = services.sign_in_sheet_rows(event, user)
    services.record_export(event, user, fmt="print", columns=["seq", "firm_name", "person_name", "person_title",
                                                              "mobile"],
                           flt=services.ExportFilter(statuses=("registered", "confirmed")), rows=len(rows),
                           full_mobiles=full, kind="sign_in_sheet")
    db.session.commit()
    return render_template("events/sign_in_sheet.html", event=event, rows=rows, full=full)


@bp.route("/<int:event_id>/report")
@organiser_required
def report(event_id):
    """After the event: attendance, no-shows, firms new to the campaign, and what followed within 90 days."""
    event = get_or_404(Event, event_id)
    return render_template("events/report.html", event=event, report=services.after_event_report(event),
                           days=services.FOLLOW_THROUGH_DAYS)


# ---------------------------------------------------------------------------------------------------------
# Public self-registration (no account). Loaded by an unguessable token, so these views run with the
# system scope for exactly that one event; nothing else is read.
# ---------------------------------------------------------------------------------------------------------


def _public_limit():
    return current_app.config.get("EVENTS_PUBLIC_RATE_LIMIT", "10/minute")


def _public_event(token: str) -> Event:
    if not token or len(token) > 32:
        abort(404)
    event = db.session.scalar(sa.select(Event).where(Event.public_token == token))
    if event is None:
        abort(404)
    return event


@bp.route("/r/<token>", methods=["GET", "POST"])
@limiter.limit(_public_limit, methods=["POST"])
def public_register(token):
    with scoped(SYSTEM):
        event = _public_event(token)
        form = PublicRegistrationForm()
        banks = [o for o in event.organisers if o.kind.value == "bank" and o.parent_id is None] or \
            services.bank_choices()
        form.preferred_bank_id.choices = choices([(0, _("No preference"))] + [(o.id, o.display_name) for o in banks])
        closed = event.status != EventStatus.PLANNED
        full = services.places_left(event) == 0

        def page(status):
            return render_template("events/public_register.html", event=event, form=form, closed=closed,
                                   full=full), status

        if closed:
            return page(200)

        def register():
            firm = services.get_or_create_firm(form.credit_code.data, form.firm_name.data, None)
            return services.add_registration(event, firm, services.PersonData(
                person_name=form.person_name.data, person_title=form.person_title.data or "",
                mobile=form.mobile.data, need_summary=form.need_summary.data or "",
                preferred_bank_id=form.preferred_bank_id.data or None, source=RegistrationSource.SELF),
                None, consent_at=utcnow())

        return save_form(form, register, render=page,
                         next_url=lambda reg: url_for("events.public_confirmation", token=reg.checkin_token))


@bp.route("/c/<token>")
def public_confirmation(token):
    """The registrant's confirmation, with the QR code to show at the door."""
    with scoped(SYSTEM):
        reg = services.registration_by_token(token)
        if reg is None:
            abort(404)
        return render_template("events/confirmation.html", event=reg.event, reg=reg, public=True,
                               qr_url=url_for("events.public_confirmation_qr", token=token, kind="svg"))


@bp.route("/c/<token>/qr.<kind>")
def public_confirmation_qr(token, kind):
    """The QR image of a confirmation (public by design, behind the same unguessable token)."""
    if kind not in ("svg", "png"):
        abort(404)
    with scoped(SYSTEM):
        reg = services.registration_by_token(token)
        if reg is None:
            abort(404)
    return qr_response(url_for("events.checkin_token", token=token, _external=True), kind)


from crm.events import ledgers  # noqa: E402,F401  (registers the events and attendance ledgers)
