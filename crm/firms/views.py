"""Firm registry: list with filters and export, type-ahead, the firm page, firm and contact editing."""
from __future__ import annotations

import json

import sqlalchemy as sa
from flask import (abort, current_app, flash, jsonify, redirect, render_template, request,
                   stream_with_context, url_for)
from flask_babel import gettext as _
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from sqlalchemy.orm import joinedload, selectinload

from crm.auth.decorators import bank_user_required, role_required, writer_required
from crm.auth.forms import EmptyForm
from crm.auth.models import Role
from crm.core import audit
from crm.core.db import generic_plans
from crm.core.formatting import fen_to_wan, today_local
from crm.core.models import WillingnessLevel
from crm.core.forms import add_field_error, save_form, show_error
from crm.core.navigation import add_nav
from crm.core.scoping import current_scope, get_or_404, scoped
from crm.core.spreadsheets import send_csv, send_xlsx
from crm.core.validators import mask_mobile
from crm.extensions import db, limiter
from crm.firms import bp, lookups, queries, services
from crm.firms.forms import SME_LABELS, SIZE_LABELS, ContactForm, FirmForm, OwnerForm
from crm.firms.models import Contact, Firm, FirmAccount
from crm.firms.timeline import FirmRecords, firm_history, firm_timeline
from crm.i18n import lazy_gettext as _l

add_nav("firms.index", _l("Firms"), "buildings", order=20)

CONTACT_ROLES = (Role.RM, Role.BANK_MANAGER, Role.BUREAU)
EXPIRY_WARNING_DAYS = 90
#: the firm page shows the firm's industry, district, street and industry section: read with the firm
FIRM_PAGE_LOADS = (joinedload(Firm.industry), joinedload(Firm.area), joinedload(Firm.street), joinedload(Firm.section))
#: and for a bank's user, the bank's own account with the firm (the tenant scope joins no other)
FIRM_PAGE_LOADS_BANK = (*FIRM_PAGE_LOADS, joinedload(Firm.accounts).joinedload(FirmAccount.owner))
_ACCOUNTS = (joinedload(Firm.accounts),)  #: (loader options built once: get_or_404 keeps one statement for them)


def _apply_field_error(form, exc: services.FirmError) -> None:
    """A duplicate credit code also links to the firm that has it (without saying which bank works with it)."""
    if getattr(exc, "existing", None) is not None and exc.field == "credit_code":
        link = Markup('<a href="{}" data-testid="existing-firm">{}</a>').format(
            url_for("firms.show", firm_id=exc.existing.id), _("Open it"))
        add_field_error(form, exc.field, Markup("{} {}").format(escape(str(exc)), link))
    else:
        show_error(form, exc)


# --------------------------------------------------------------------------------------------------
# List, export, type-ahead
# --------------------------------------------------------------------------------------------------


def _per_page() -> int:
    try:
        per = int(request.args.get("per", current_app.config.get("PAGE_SIZE", 50)))
    except ValueError:
        per = 50
    return max(1, min(per, 200))


def _filter_context(filters):
    bank_id = queries.viewer_bank_id(current_user, filters)
    return {
        "industries": lookups.industries(),
        "areas": lookups.areas(),
        "streets": lookups.streets(filters.area or None),
        "willingness_levels": lookups.willingness_levels(),
        "sme_labels": SME_LABELS,
        "owners": services.bank_user_choices(bank_id) if bank_id else [],  # ((id, name): no User object each)
        "campaigns": queries.campaigns_for(current_user),
        "banks": queries.banks() if current_user.bank_id is None else [],
        "branches": queries.branches_of(bank_id),
    }


@bp.route("/")
@login_required
def index():
    """The firm registry: search, combinable filters, sorting and keyset pages."""
    filters = queries.FirmFilters.from_args(request.args)
    page = queries.firm_page(filters, current_user, per_page=_per_page())
    bank_id = queries.viewer_bank_id(current_user, filters)
    accounts = queries.accounts_for(page.items, bank_id)
    return render_template("firms/index.html", filters=filters, page=page, accounts=accounts,
                           label=lookups.label, today=today_local(), **_filter_context(filters))


EXPORT_HEADERS = [
    "企业名称", "统一社会信用代码", "所属区", "所属街道", "重点产业", "国民经济行业门类", "高新技术企业", "高企证书编号",
    "高企发证日期", "专精特新", "发明专利数", "实用新型数", "外观设计数", "软件著作权数", "跨境（涉港）",
    "客户经理", "意愿等级", "最近走访日期", "融资需求(万元)", "联系人信息",
]


_EXPORT_CHUNK = 1000


def _export_rows(stmt, scope, bank_id, org_id, full_mobiles: bool, today, sme_labels):
    """Export rows of ``stmt``, run when the first row is asked for and read a chunk at a time: the accounts
    and contacts of each chunk in one query each (labels are resolved by the view: no locale look-up here).

    The response streams after the view has returned (its teardown has closed the request's session and reset
    the tenant scope), so this runs under the ``scope`` captured by the view, on the session of the context
    :func:`flask.stream_with_context` pushes again, and uses precomputed ids instead of ``current_user``.
    """
    with scoped(scope):
        session = db.session()
        willingness = {w.code: w.name_zh for w in session.scalars(sa.select(WillingnessLevel))}
        result = session.scalars(stmt.execution_options(yield_per=_EXPORT_CHUNK))
        try:
            yield from _export_chunks(session, result, bank_id, org_id, full_mobiles, today, willingness,
                                      sme_labels)
        finally:
            result.close()


def _export_chunks(session, result, bank_id, org_id, full_mobiles, today, willingness, sme_labels):
    """The rows of each chunk of firms (partitions of the streamed result)."""
    for firms in result.partitions():
        ids = [f.id for f in firms]
        accounts = {}
        if bank_id is not None:
            accounts = {a.firm_id: a for a in session.scalars(sa.select(FirmAccount).where(
                FirmAccount.bank_id == bank_id, FirmAccount.firm_id.in_(ids))
                .options(selectinload(FirmAccount.owner)))}
        contacts_by_firm: dict[int, list[Contact]] = {}
        for c in session.scalars(sa.select(Contact).where(
                Contact.firm_id.in_(ids), Contact.is_deleted.is_(False)).order_by(Contact.id)):
            contacts_by_firm.setdefault(c.firm_id, []).append(c)
        for f in firms:
            acct = accounts.get(f.id)
            people = []
            for c in contacts_by_firm.get(f.id, []):
                mobile = c.mobile if (full_mobiles and org_id is not None and c.bank_id == org_id) \
                    else mask_mobile(c.mobile)
                people.append(" ".join(p for p in (c.name, c.title, mobile) if p))
            yield (
                f.name, f.credit_code, f.area.name if f.area else "", f.street.name if f.street else "",
                f.industry.name_zh if f.industry else "", f.section_code or "", f.is_high_tech_on(today),
                f.high_tech_cert_no or "", f.high_tech_issued_on,
                sme_labels[f.sme_tier] if f.sme_tier.value != "none" else "",
                f.invention_patents, f.utility_models, f.design_patents, f.software_copyrights,
                f.is_cross_border,
                acct.owner.display_name if acct and acct.owner else "",
                willingness.get(acct.willingness_code, "") if acct else "",
                acct.last_visit_on if acct else None,
                fen_to_wan(acct.open_need_fen) if acct and acct.open_need_fen else None,
                people,
            )


@bp.route("/export.<fmt>")
@login_required
@limiter.limit("30/hour")
def export(fmt):
    """The filtered list as CSV or XLSX (the same filters and scope as the page); audited with its row count.

    Streamed: the audit is written and committed first (row counts by COUNT), then the firms are read from a
    cursor in chunks of ``_EXPORT_CHUNK`` while the file is sent, so memory does not grow with the list.
    """
    if fmt not in ("csv", "xlsx"):
        abort(404)
    filters = queries.FirmFilters.from_args(request.args)
    full = request.args.get("mobiles") == "full" and services.contact_org_id(current_user) is not None
    limit = current_app.config.get("EXPORT_MAX_ROWS", 50_000)
    org_id = services.contact_org_id(current_user)
    stmt = queries.ordered(queries.filtered_firms(filters, current_user), filters, current_user).limit(limit)
    ids = sa.select(stmt.with_only_columns(Firm.id).subquery().c.id)
    n_rows = db.session.scalar(sa.select(sa.func.count()).select_from(ids.subquery())) or 0
    bank_id = queries.viewer_bank_id(current_user, filters)
    detail = json.dumps(filters.query_args(), ensure_ascii=False)[:400]
    audit.record("firm.export", None, object_type="firm", detail=f"{fmt} rows={n_rows} {detail}",
                 after={"rows": n_rows, "format": fmt})
    if full:
        revealed = db.session.scalar(sa.select(sa.func.count(Contact.id)).where(
            Contact.firm_id.in_(ids), Contact.is_deleted.is_(False), Contact.mobile != "",
            Contact.bank_id == org_id)) or 0
        audit.record("contact.export", None, object_type="contact",
                     detail=f"{fmt} full mobiles={revealed} firms={n_rows}",
                     after={"rows": revealed, "format": fmt})
    db.session.commit()
    sme_labels = {tier: str(label) for tier, label in SME_LABELS.items()}  # in the user's language, now
    rows = stream_with_context(_export_rows(stmt, current_scope(), bank_id, org_id, full, today_local(), sme_labels))
    name = f"企业名单_{today_local().isoformat()}"
    if fmt == "csv":
        return send_csv(name, EXPORT_HEADERS, rows)
    return send_xlsx(name, EXPORT_HEADERS, rows, sheet_title="企业")


@bp.route("/lookup")
@login_required
def lookup():
    """Type-ahead: id, name and credit code of up to 10 firms matching a fragment of the name or code."""
    term = (request.args.get("q") or "").strip()[:60]
    if not term:
        return jsonify([])
    stmt = sa.select(Firm.id, Firm.name, Firm.credit_code).where(queries.name_or_code_contains(term)).order_by(
        Firm.name, Firm.id).limit(10)
    return jsonify([{"id": r.id, "name": r.name, "credit_code": r.credit_code} for r in db.session.execute(stmt)])


# --------------------------------------------------------------------------------------------------
# Create / edit / show
# --------------------------------------------------------------------------------------------------


@bp.route("/new", methods=["GET", "POST"])
@writer_required
def create():
    """Register a firm; a known credit code links to the existing firm without saying who works with it."""
    form = FirmForm()
    if request.method == "GET" and request.args.get("name"):
        form.name.data = request.args.get("name", "")[:120]
    return save_form(
        form, lambda: services.create_firm(form.service_data(), user=current_user),
        render=lambda status: (render_template("firms/form.html", form=form, firm=None), status),
        saved=lambda firm: _("The firm %(name)s was registered.", name=firm.name),
        next_url=lambda firm: url_for("firms.show", firm_id=firm.id), show_error=_apply_field_error)


@bp.route("/<int:firm_id>/edit", methods=["GET", "POST"])
@writer_required
def edit(firm_id):
    """Edit a firm's master data; a stale version is refused with 409."""
    firm = get_or_404(Firm, firm_id)
    form = FirmForm(firm=firm)
    return save_form(
        form, lambda: services.update_firm(firm, form.service_data(), user=current_user, version=form.version.data),
        render=lambda status: (render_template("firms/form.html", form=form, firm=firm), status),
        saved=_("Saved."), next_url=lambda _result: url_for("firms.show", firm_id=firm.id),
        show_error=_apply_field_error)


@bp.route("/<int:firm_id>")
@login_required
def show(firm_id):
    """The firm page: data, expiry warnings, contacts, the timeline the viewer may see, and change history."""
    generic_plans(db.session)  # every statement of the page looks rows up by key
    firm = get_or_404(Firm, firm_id, options=FIRM_PAGE_LOADS if current_user.bank_id is None else FIRM_PAGE_LOADS_BANK)
    return _render_show(firm)


def _render_show(firm, revealed=None, status=200):
    today = today_local()
    records = FirmRecords(firm)
    expires = firm.high_tech_expires_on
    warning = None
    if expires is not None and firm.high_tech_issued_on <= today:
        if expires < today:
            warning = "expired"
        elif (expires - today).days <= EXPIRY_WARNING_DAYS:
            warning = "soon"
    account = None
    if current_user.bank_id is not None:
        account = next((a for a in firm.accounts if a.bank_id == current_user.bank_id), None)
    return render_template(
        "firms/show.html", firm=firm, today=today, expires=expires, expiry_warning=warning, account=account,
        contacts=services.visible_contacts(firm),
        timeline=firm_timeline(firm, current_user, records), history=firm_history(firm, current_user, records=records),
        can_manage_contact=services.can_manage_contact,
        contact_org=services.contact_org_id(current_user), revealed=revealed or {}, label=lookups.label,
        sme_labels=SME_LABELS, size_labels=SIZE_LABELS, button_form=EmptyForm(),
        willingness=db.session.get(WillingnessLevel, account.willingness_code)
        if account is not None and account.willingness_code else None,
    ), status


@bp.route("/<int:firm_id>/owner", methods=["GET", "POST"])
@bank_user_required
def assign_owner(firm_id):
    """Assign the bank's relationship manager for the firm (a user of the same bank): a page of its own, so the
    firm page, the one a relationship manager opens most, does not list the bank's every user."""
    firm = get_or_404(Firm, firm_id, options=_ACCOUNTS)
    form = OwnerForm()
    users = services.bank_users(current_user.bank_id)
    form.owner_id.choices = [("", "—")] + [(str(u.id), u.display_name) for u in users]
    if request.method == "GET":
        account = next((a for a in firm.accounts if a.bank_id == current_user.bank_id), None)
        form.owner_id.data = str(account.owner_id) if account and account.owner_id else ""
        return render_template("firms/owner.html", firm=firm, form=form)
    if not form.validate_on_submit():
        abort(400)
    owner = next((u for u in users if str(u.id) == form.owner_id.data), None)
    account = services.ensure_account(firm, current_user.bank_id, user=current_user)
    services.set_account_owner(account, owner, user=current_user)
    db.session.commit()
    flash(_("Saved."), "success")
    return redirect(url_for("firms.show", firm_id=firm.id))


# --------------------------------------------------------------------------------------------------
# Contacts
# --------------------------------------------------------------------------------------------------


def _own_contact_or_404(contact_id) -> Contact:
    contact = get_or_404(Contact, contact_id)
    if not services.can_manage_contact(current_user, contact):
        abort(404)
    return contact


@bp.route("/<int:firm_id>/contacts/new", methods=["GET", "POST"])
@role_required(*CONTACT_ROLES)
def contact_create(firm_id):
    """Record a person at the firm for the user's organisation."""
    firm = get_or_404(Firm, firm_id)
    form = ContactForm()
    return save_form(
        form, lambda: services.create_contact(firm, form.data, user=current_user),
        render=lambda status: (render_template("firms/contact_form.html", form=form, firm=firm, contact=None), status),
        saved=_("The contact was saved."), next_url=lambda _c: url_for("firms.show", firm_id=firm.id) + "#contacts")


@bp.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
@role_required(*CONTACT_ROLES)
def contact_edit(contact_id):
    """Edit a contact of the user's own organisation; a stale version is refused with 409."""
    contact = _own_contact_or_404(contact_id)
    form = ContactForm(obj=contact)
    if request.method == "GET":
        form.version.data = contact.version
    return save_form(
        form, lambda: services.update_contact(contact, form.data, user=current_user, version=form.version.data),
        render=lambda status: (render_template("firms/contact_form.html", form=form, firm=contact.firm,
                                               contact=contact), status),
        saved=_("The contact was saved."),
        next_url=lambda _c: url_for("firms.show", firm_id=contact.firm_id) + "#contacts")


@bp.route("/contacts/<int:contact_id>/delete", methods=["POST"])
@role_required(*CONTACT_ROLES)
def contact_delete(contact_id):
    """Remove a contact of the user's own organisation (hidden, audited)."""
    contact = _own_contact_or_404(contact_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    firm_id = contact.firm_id
    services.delete_contact(contact, user=current_user)
    db.session.commit()
    flash(_("The contact was removed."), "success")
    return redirect(url_for("firms.show", firm_id=firm_id) + "#contacts")


@bp.route("/contacts/<int:contact_id>/reveal", methods=["POST"])
@role_required(*CONTACT_ROLES)
def contact_reveal(contact_id):
    """Show a contact's full mobile to its recording organisation; audited as contact.reveal."""
    contact = get_or_404(Contact, contact_id)
    if not services.can_manage_contact(current_user, contact):
        abort(403)
    if not EmptyForm().validate_on_submit():
        abort(400)
    mobile = services.reveal_contact(contact, user=current_user)
    db.session.commit()
    if request.accept_mimetypes.best == "application/json":
        return jsonify(id=contact.id, mobile=mobile)
    return _render_show(contact.firm, revealed={contact.id: mobile})


@bp.route("/<int:firm_id>/contacts.json")
@login_required
def contacts_json(firm_id):
    """The firm's contacts visible to the viewer (masked), for the visit form's contact picker."""
    firm = get_or_404(Firm, firm_id)
    return jsonify([{"id": c.id, "name": c.name, "title": c.title, "mobile": mask_mobile(c.mobile)}
                    for c in services.visible_contacts(firm)])


from crm.firms import ledger  # noqa: E402,F401  (registers the firms ledger with the import framework)
