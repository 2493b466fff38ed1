"""The role × action × tenant matrix (SECURITY.md AC-2, AC-3, AC-4, AC-7) for the bank-owned records: firm
relationships (FirmAccount), contacts, visits, follow-ups, events, registrations, credit applications, pledges,
valuations and pools.

Every URL rule of the firms, visits, events and credit blueprints is discovered from ``app.url_map``; each
(endpoint, method) must have a row in ``MATRIX`` (or a reason in ``OUTSIDE_THE_MATRIX``), so a new route fails
``test_every_route_of_the_bank_owned_blueprints_is_in_the_matrix`` until someone states who may use it.

Each row says which roles pass the role gate, whether the URL names a bank-owned record, and how to build a
fresh target (cheap factories in one shared database per module, so a permitted write never disturbs another
case). For each principal (RM and manager of bank A, RM of bank B, the bureau, the admin, anonymous) and each
tenant (a record of bank A, a record of bank B) the expected outcome follows from the row:

- anonymous: 302 to the sign-in page;
- a role outside the gate: 403;
- a bank user and another bank's record: 404 with exactly the page of a record that does not exist;
- otherwise the ``ok`` status; a list, page or export shows the tenant's marker exactly when the principal may
  see that bank's records.

A refused request commits nothing (the audit trail aside); a permitted write commits, so the "nothing written"
assertion can fail.
"""
from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import date
from typing import Callable, Optional

import pytest
import sqlalchemy as sa

from crm.core.formatting import today_local
from crm.core.scoping import scope_for, scoped
from crm.extensions import db
from tests import factories
from tests import factories_credit as fc
from tests import factories_events as fe
from tests.security_payloads import (
    WriteSpy, blueprint_of, collection_app, normalise_body, rules, shared_app,
)

BLUEPRINTS = {"firms", "visits", "events", "credit"}
PRINCIPALS = ["rm_a", "mgr_a", "rm_b", "bureau", "admin", None]
BANK = frozenset({"rm", "bank_manager"})
WRITERS = BANK | {"admin"}
EVERYONE = BANK | {"bureau", "admin"}
ADMIN = frozenset({"admin"})

#: (endpoint, method) -> why it is not in the matrix; these are covered elsewhere
OUTSIDE_THE_MATRIX = {
    ("events.public_register", "GET"): "public by design (AC-1 allowlist): reached by an unguessable token",
    ("events.public_register", "POST"): "public by design (AC-1 allowlist): reached by an unguessable token",
    ("events.public_confirmation", "GET"): "public by design (AC-1 allowlist): reached by an unguessable token",
    ("events.public_confirmation_qr", "GET"): "public by design (AC-1 allowlist): reached by an unguessable token",
}

_n = itertools.count(1)
_mobiles = itertools.count(1)
MISSING_ID = 2_147_483_000
MISSING_TOKEN = "no-such-token-000000000"


def uniq(prefix: str) -> str:
    return f"{prefix}{next(_n):05d}"


def mobile() -> str:
    return f"137{next(_mobiles):08d}"


# -- the world of one case --------------------------------------------------------------------------------


@dataclass
class Ctx:
    """What a builder needs: the shared world, the tenant bank ("A" or "B") and the principal (None: anonymous)."""

    w: object
    tenant: str
    principal: Optional[object]

    @property
    def bank(self):
        return self.w.bank_a if self.tenant == "A" else self.w.bank_b

    @property
    def rm(self):
        return self.w.rm_a if self.tenant == "A" else self.w.rm_b

    @property
    def colleague(self):
        return self.w.rm_a2 if self.tenant == "A" else self.w.mgr_b

    @property
    def me(self):
        """The principal, or (anonymous) the tenant's RM, for form values that name a user."""
        return self.principal or self.rm

    @property
    def my_colleague(self):
        p = self.me
        if p.bank_id == self.w.bank_a.id:
            return self.w.rm_a2 if p.id != self.w.rm_a2.id else self.w.rm_a
        if p.bank_id == self.w.bank_b.id:
            return self.w.mgr_b
        return self.w.rm_a2


@dataclass
class Target:
    params: dict = field(default_factory=dict)
    data: Optional[dict] = None
    query: Optional[dict] = None
    #: text that appears in the answer exactly when the principal may see the tenant's record
    marker: Optional[str] = None
    #: a check run after a permitted or refused request (e.g. another bank's row is untouched)
    after: Optional[Callable[[object], None]] = None


@dataclass(frozen=True)
class Spec:
    kind: str  # list, view, create, edit, delete, export, state
    roles: frozenset
    build: Callable[[Ctx], Target]
    #: URL parameters that name a bank-owned row (another bank's → 404 like a missing one)
    tenant: tuple = ()
    ok: tuple = (200,)
    #: a permitted request must commit a write
    writes: bool = False
    #: (role, relation) -> expected outcome that differs from the gate/tenant rule, or None
    special: Optional[Callable[[str, str], Optional[object]]] = None
    #: the tenant does not matter for this action (run once, with bank A's data)
    tenantless: bool = False


# -- builders ----------------------------------------------------------------------------------------------


def _firm(ctx):
    return factories.firm(uniq("矩阵测试企业"))


def _contact(ctx, firm=None):
    return factories.contact(firm or _firm(ctx), ctx.bank, name=uniq("矩阵联系人"), mobile=mobile())


def _visit(ctx, **kw):
    return factories.visit(kw.pop("firm", None) or _firm(ctx), ctx.rm, ctx.w.campaign, **kw)


def _follow_up(ctx, assignee=None, due_on=date(2026, 12, 9), title=None):
    return factories.follow_up(_firm(ctx), assignee or ctx.rm, due_on, title=title or uniq("矩阵回访"))


def _event(ctx, **kw):
    return fe.event([ctx.bank], ctx.w.campaign, title=kw.pop("title", None) or uniq("矩阵活动"),
                    held_on=date(2026, 12, 18), **kw)


def _registration(ctx, event=None, **kw):
    return fe.registration(event or _event(ctx), _firm(ctx), name=uniq("矩阵报名"), mob=mobile(), **kw)


def _application(ctx, firm=None, accepted_on=date(2026, 3, 2)):
    from crm.credit import services

    data = services.ApplicationData(firm=firm or _firm(ctx), product_code="ip_pledge", requested_fen=100_000_000,
                                    accepted_on=accepted_on, campaign_id=ctx.w.campaign.id, requested_term_months=12)
    with scoped(scope_for(ctx.rm)):
        return services.create_application(ctx.rm, data, today=max(today_local(), date(2026, 11, 26)))


def _pledge(ctx, registered=False):
    app = _application(ctx)
    p = fc.pledge(app, ctx.rm, patent_no=fc.patent_no())
    if registered:
        from crm.credit import services

        with scoped(scope_for(ctx.rm)):
            services.register_pledge(p, ctx.rm, uniq("Y2026"), date(2026, 3, 9), 300 * 1_000_000,
                                     today=date(2026, 11, 26))
    return p


def _valuation(ctx):
    from crm.credit import services

    app = _application(ctx)
    with scoped(scope_for(ctx.rm)):
        return services.add_valuation(app, ctx.rm, "矩阵评估所", date(2026, 3, 3), today=date(2026, 11, 26))


def _pool(ctx, name=None):
    from crm.credit import services

    with scoped(scope_for(ctx.rm)):
        return services.create_pool(ctx.rm, name or uniq("矩阵资产池"), "深圳证券交易所", None)


def _approved(ctx):
    app = _application(ctx)
    fc.advance(app, ctx.rm, fc.Stage.APPROVED)
    return app


def _event_form(ctx, **over):
    data = {"title": uniq("矩阵新活动"), "campaign_id": ctx.w.campaign.id, "kind": "park", "held_on": "2026-12-18",
            "start_time": "14:30", "end_time": "17:00", "venue": "天安云谷", "capacity": "60", "status": "planned",
            "organisers": [ctx.me.org_id], "industries": ["ai"], "description": "", "deals_signed": "0",
            "intentions": "0"}
    data.update(over)
    return data


def _visit_form(ctx, firm, **over):
    from tests.factories_firms import form_visit

    return form_visit(firm, ctx.w.campaign, **over)


def _credit_form(ctx, firm, **over):
    data = {"firm": firm.credit_code, "product_code": "ip_pledge", "requested_wan": "100",
            "requested_term_months": "12",
            "accepted_on": "2026-03-02", "campaign_id": ctx.w.campaign.id, "branch_id": 0, "rm_id": ctx.me.id}
    data.update(over)
    return data


def _account_owner_kept(ctx, account_id, owner_id):
    def check(resp):
        from crm.firms.models import FirmAccount

        row = db.session.scalar(sa.select(FirmAccount).where(FirmAccount.id == account_id)
                                .execution_options(skip_tenant_scope=True))
        if ctx.principal is None or ctx.principal.bank_id != row.bank_id:
            assert row.owner_id == owner_id, "another bank's firm relationship was changed"
    return check


def b_firms_index(ctx):
    return Target(query={"q": "矩阵"})


def b_firms_export(ctx):
    c = _contact(ctx)
    return Target(params={"fmt": "csv"}, query={"q": c.firm.name}, marker=c.name)


def b_firm_show(ctx):
    c = _contact(ctx)
    return Target(params={"firm_id": c.firm_id}, marker=c.name)


def b_contacts_json(ctx):
    c = _contact(ctx)
    return Target(params={"firm_id": c.firm_id}, marker=c.name)


def b_firm_lookup(ctx):
    return Target(query={"q": "共享"})


def b_firm_create(ctx):
    from tests.factories_firms import form_firm

    return Target(data=form_firm(uniq("矩阵新企业")))


def b_firm_edit(ctx):
    from tests.factories_firms import form_firm

    f = _firm(ctx)
    return Target(params={"firm_id": f.id}, data=form_firm(f.name + "改", code=f.credit_code, version=str(f.version)))


def b_assign_owner(ctx):
    f = _firm(ctx)
    acct = factories.account(f, ctx.bank, ctx.rm)
    return Target(params={"firm_id": f.id}, data={"owner_id": str(ctx.me.id)},
                  after=_account_owner_kept(ctx, acct.id, ctx.rm.id))


def b_contact_create(ctx):
    return Target(params={"firm_id": _firm(ctx).id}, data={"name": uniq("矩阵新联系人"), "mobile": mobile()})


def b_contact(ctx):
    c = _contact(ctx)
    return Target(params={"contact_id": c.id}, data={"name": c.name + "改", "mobile": c.mobile,
                                                     "version": str(c.version)})


def b_visits_index(ctx):
    v = _visit(ctx, visited_on=today_local())
    return Target(marker=v.firm.name)


def b_visit(ctx):
    v = _visit(ctx)
    return Target(params={"visit_id": v.id}, data=_visit_form(ctx, v.firm, version=str(v.version)))


def b_visit_create(ctx):
    return Target(data=_visit_form(ctx, _firm(ctx)))


def b_my_followups(ctx):
    p = ctx.principal
    assignee = p if p is not None and p.bank_id == ctx.bank.id else ctx.rm
    fu = _follow_up(ctx, assignee=assignee)
    return Target(marker=fu.title)


def b_overdue(ctx):
    fu = _follow_up(ctx, due_on=date(2026, 1, 5))
    return Target(marker=fu.title)


def b_followup_create(ctx):
    return Target(query={"firm_id": _firm(ctx).id},
                  data={"title": uniq("矩阵新回访"), "due_on": "2026-12-10", "assignee_id": str(ctx.me.id)})


def b_followup_done(ctx):
    fu = _follow_up(ctx)
    return Target(params={"fu_id": fu.id}, data={"outcome": "已送达方案", "version": str(fu.version)})


def b_followup_reassign(ctx):
    fu = _follow_up(ctx)
    return Target(params={"fu_id": fu.id}, data={"assignee_id": str(ctx.my_colleague.id), "version": str(fu.version)})


def b_events_index(ctx):
    e = _event(ctx, title=uniq("矩阵列表活动"))
    return Target(query={"q": "矩阵列表活动"}, marker=e.title)


def b_event_create(ctx):
    return Target(data=_event_form(ctx))


def b_event(ctx):
    return Target(params={"event_id": _event(ctx).id})


def b_event_page(ctx):
    e = _event(ctx)
    return Target(params={"event_id": e.id}, marker=e.title)


def b_event_edit(ctx):
    e = _event(ctx)
    return Target(params={"event_id": e.id},
                  data=_event_form(ctx, code=e.code, title=e.title + "改", version=str(e.version)))


def b_event_published(ctx):
    e = _event(ctx)
    e.public_token = uniq("matrix-token-")
    return Target(params={"event_id": e.id, "kind": "svg"})


def b_event_firm_search(ctx):
    return Target(params={"event_id": _event(ctx).id}, query={"q": "共享"})


def b_add_registration(ctx):
    e = _event(ctx)
    f = _firm(ctx)
    return Target(params={"event_id": e.id},
                  data={"firm_id": str(f.id), "person_name": "矩阵来宾", "mobile": mobile(), "source": "invited",
                        "status": "registered", "preferred_bank_id": "0"})


def b_registration(ctx):
    r = _registration(ctx)
    return Target(params={"event_id": r.event_id, "reg_id": r.id}, marker=r.person_name,
                  data={"person_name": r.person_name + "改", "mobile": r.mobile, "source": "invited",
                        "status": "registered", "preferred_bank_id": "0", "version": str(r.version)})


def b_undo_checkin(ctx):
    r = _registration(ctx, checked_in=True)
    return Target(params={"event_id": r.event_id, "reg_id": r.id})


def b_invite(ctx):
    e = _event(ctx)
    c = _contact(ctx)
    return Target(params={"event_id": e.id}, data={"firm_ids": [str(c.firm_id)]})


def b_walk_in(ctx):
    e = _event(ctx)
    return Target(params={"event_id": e.id}, data={
        "firm_name": ctx.w.firm.name, "credit_code": "", "person_name": "现场来宾", "person_title": "",
        "mobile": mobile()})


def b_checkin_token(ctx):
    r = _registration(ctx)
    return Target(params={"token": r.checkin_token}, marker=r.person_name)


def b_export_page(ctx):
    r = _registration(ctx)
    return Target(params={"event_id": r.event_id}, data={"action": "csv", "columns": ["person_name", "mobile"]})


def b_event_export(ctx):
    r = _registration(ctx)
    return Target(params={"event_id": r.event_id, "fmt": "csv"}, marker=r.person_name)


def b_column_set(ctx):
    from crm.events import services

    with scoped(scope_for(ctx.rm)):
        cs = services.save_column_set(ctx.rm, uniq("矩阵列"), ["person_name"])
    return Target(params={"set_id": cs.id}, data={"event_id": ""})


def b_credit_index(ctx):
    a = _application(ctx, accepted_on=today_local())
    return Target(marker=a.firm.name)


def b_credit_list(ctx):
    return Target()


def b_credit_new(ctx):
    return Target(data=_credit_form(ctx, _firm(ctx)))


def b_application(ctx):
    a = _application(ctx)
    return Target(params={"app_id": a.id}, marker=a.firm.name,
                  data=_credit_form(ctx, a.firm, requested_wan="120", rm_id=ctx.rm.id, version=str(a.version)))


def b_move(ctx):
    a = _application(ctx)
    return Target(params={"app_id": a.id, "stage": "under_review"},
                  data={"to": "under_review", "changed_on": "2026-03-03", "version": str(a.version)})


def b_new_pledge(ctx):
    a = _application(ctx)
    return Target(params={"app_id": a.id},
                  data={"patent_no": fc.patent_no(), "title": "一种方法", "granted_on": "2021-05-07",
                        "expires_on": "2040-06-01", "legal_status": "valid", "owner_name": "x",
                        "owner_relation": "self"})


def b_register_pledge(ctx):
    p = _pledge(ctx)
    return Target(params={"pledge_id": p.id}, data={"registration_no": uniq("Y2026M"), "registered_on": "2026-03-09",
                                                    "secured_wan": "300", "version": str(p.version)})


def b_release_pledge(ctx):
    return Target(params={"pledge_id": _pledge(ctx).id}, data={})


def b_new_valuation(ctx):
    a = _application(ctx)
    return Target(params={"app_id": a.id}, data={"valuer": "矩阵评估所", "ip_asset_id": "0",
                                                 "requested_on": "2026-03-03"})


def b_complete_valuation(ctx):
    v = _valuation(ctx)
    return Target(params={"valuation_id": v.id}, data={"completed_on": "2026-03-05", "amount_wan": "800"})


def b_pools(ctx):
    p = _pool(ctx)
    return Target(marker=p.name, data={"name": uniq("矩阵新池"), "exchange": "深圳证券交易所",
                                       "issue_on": ""})


def b_pool(ctx):
    p = _pool(ctx)
    a = _approved(ctx)
    return Target(params={"pool_id": p.id}, marker=p.name, data={"application_id": str(a.id)})


def b_pool_export(ctx):
    return Target(params={"pool_id": _pool(ctx).id})


def b_pool_remove(ctx):
    from crm.credit import services

    p = _pool(ctx)
    a = _approved(ctx)
    with scoped(scope_for(ctx.rm)):
        services.add_to_pool(p, a, ctx.rm)
    return Target(params={"pool_id": p.id, "app_id": a.id}, data={})


def b_calendar(ctx):
    return Target(data={"day": f"2026-12-{next(_n) % 28 + 1:02d}", "is_workday": "1", "note": "矩阵"})


def b_calendar_delete(ctx):
    from crm.core.models import HolidayOverride

    row = HolidayOverride(day=date(2025, 1 + next(_n) % 12, 1 + next(_n) % 28), is_workday=True, note="矩阵")
    db.session.add(row)
    db.session.flush()
    return Target(params={"override_id": row.id}, data={})


# -- special expectations ------------------------------------------------------------------------------------


def contact_hidden_from_bureau(role, rel):
    """The bureau sees a bank's contact (masked) but cannot manage it: the loader answers 404."""
    return 404 if role == "bureau" else None


def bureau_writes_only_events_it_organises(role, rel):
    """The bureau co-organises events; an event organised by banks alone is the banks' to write."""
    return 403 if role == "bureau" else None


def own_column_sets_only(role, rel):
    """Column sets are the user's own: anyone else's answers 404 (the builder's set belongs to the tenant RM)."""
    if role in BANK | {"bureau", "admin"}:
        return "ok" if rel == "self" else 404
    return None


# -- the matrix ----------------------------------------------------------------------------------------------

TENANT_EVENT = ("event_id",)
MATRIX: dict[tuple[str, str], Spec] = {
    # firms: the shared master record, the bank's relationship (FirmAccount) and contacts
    ("firms.index", "GET"): Spec("list", EVERYONE, b_firms_index, tenantless=True),
    ("firms.export", "GET"): Spec("export", EVERYONE, b_firms_export),
    ("firms.lookup", "GET"): Spec("list", EVERYONE, b_firm_lookup, tenantless=True),
    ("firms.create", "GET"): Spec("create", WRITERS, b_firm_create, tenantless=True),
    ("firms.create", "POST"): Spec("create", WRITERS, b_firm_create, ok=(302,), writes=True, tenantless=True),
    ("firms.show", "GET"): Spec("view", EVERYONE, b_firm_show),
    ("firms.edit", "GET"): Spec("edit", WRITERS, b_firm_edit, tenantless=True),
    ("firms.edit", "POST"): Spec("edit", WRITERS, b_firm_edit, ok=(302,), writes=True, tenantless=True),
    ("firms.assign_owner", "GET"): Spec("edit", BANK, b_assign_owner, tenantless=True),
    ("firms.assign_owner", "POST"): Spec("state", BANK, b_assign_owner, ok=(302,), writes=True),
    ("firms.contacts_json", "GET"): Spec("list", EVERYONE, b_contacts_json),
    ("firms.contact_create", "GET"): Spec("create", BANK | {"bureau"}, b_contact_create, tenantless=True),
    ("firms.contact_create", "POST"): Spec("create", BANK | {"bureau"}, b_contact_create, ok=(302,), writes=True,
                                           tenantless=True),
    ("firms.contact_edit", "GET"): Spec("edit", BANK | {"bureau"}, b_contact, tenant=("contact_id",),
                                        special=contact_hidden_from_bureau),
    ("firms.contact_edit", "POST"): Spec("edit", BANK | {"bureau"}, b_contact, tenant=("contact_id",), ok=(302,),
                                         writes=True, special=contact_hidden_from_bureau),
    ("firms.contact_delete", "POST"): Spec("delete", BANK | {"bureau"}, b_contact, tenant=("contact_id",), ok=(302,),
                                           writes=True, special=contact_hidden_from_bureau),
    ("firms.contact_reveal", "POST"): Spec("state", BANK | {"bureau"}, b_contact, tenant=("contact_id",),
                                           special=lambda role, rel: 403 if role == "bureau" else None),
    # visits and follow-ups
    ("visits.index", "GET"): Spec("list", EVERYONE, b_visits_index),
    ("visits.show", "GET"): Spec("view", EVERYONE, b_visit, tenant=("visit_id",)),
    ("visits.create", "GET"): Spec("create", BANK, b_visit_create, tenantless=True),
    ("visits.create", "POST"): Spec("create", BANK, b_visit_create, ok=(302,), writes=True, tenantless=True),
    ("visits.edit", "GET"): Spec("edit", BANK, b_visit, tenant=("visit_id",)),
    ("visits.edit", "POST"): Spec("edit", BANK, b_visit, tenant=("visit_id",), ok=(302,), writes=True),
    ("visits.delete", "POST"): Spec("delete", BANK, b_visit, tenant=("visit_id",), ok=(302,), writes=True),
    ("visits.my_followups", "GET"): Spec("list", BANK, b_my_followups),
    ("visits.overdue", "GET"): Spec("list", frozenset({"bank_manager"}), b_overdue),
    ("visits.followup_create", "GET"): Spec("create", BANK, b_followup_create, tenantless=True),
    ("visits.followup_create", "POST"): Spec("create", BANK, b_followup_create, ok=(302,), writes=True,
                                             tenantless=True),
    ("visits.followup_done", "POST"): Spec("state", BANK, b_followup_done, tenant=("fu_id",), ok=(302,), writes=True),
    ("visits.followup_reassign", "GET"): Spec("edit", BANK, b_followup_reassign, tenant=("fu_id",)),
    ("visits.followup_reassign", "POST"): Spec("state", BANK, b_followup_reassign, tenant=("fu_id",), ok=(302,),
                                               writes=True),
    # events and registrations (an event belongs to the banks that organise it)
    ("events.index", "GET"): Spec("list", EVERYONE, b_events_index),
    ("events.create", "GET"): Spec("create", EVERYONE, b_event_create, tenantless=True),
    ("events.create", "POST"): Spec("create", EVERYONE, b_event_create, ok=(302,), writes=True, tenantless=True),
    ("events.detail", "GET"): Spec("view", EVERYONE, b_event_page, tenant=TENANT_EVENT),
    ("events.edit", "GET"): Spec("edit", EVERYONE, b_event_edit, tenant=TENANT_EVENT,
                                 special=bureau_writes_only_events_it_organises),
    ("events.edit", "POST"): Spec("edit", EVERYONE, b_event_edit, tenant=TENANT_EVENT, ok=(302,), writes=True,
                                  special=bureau_writes_only_events_it_organises),
    ("events.publish", "POST"): Spec("state", EVERYONE, b_event, tenant=TENANT_EVENT, ok=(302,), writes=True,
                                     special=bureau_writes_only_events_it_organises),
    ("events.poster", "GET"): Spec("view", EVERYONE, b_event, tenant=TENANT_EVENT),
    ("events.public_qr", "GET"): Spec("view", EVERYONE, b_event_published, tenant=TENANT_EVENT),
    ("events.report", "GET"): Spec("view", EVERYONE, b_event_page, tenant=TENANT_EVENT),
    ("events.desk", "GET"): Spec("view", EVERYONE, b_registration, tenant=TENANT_EVENT),
    ("events.desk_rows", "GET"): Spec("view", EVERYONE, b_registration, tenant=TENANT_EVENT),
    ("events.desk_counts", "GET"): Spec("view", EVERYONE, b_event, tenant=TENANT_EVENT),
    ("events.firm_search", "GET"): Spec("view", EVERYONE, b_event_firm_search, tenant=TENANT_EVENT),
    ("events.add_registration", "GET"): Spec("create", EVERYONE, b_add_registration, tenant=TENANT_EVENT,
                                             special=bureau_writes_only_events_it_organises),
    ("events.add_registration", "POST"): Spec("create", EVERYONE, b_add_registration, tenant=TENANT_EVENT,
                                              ok=(302,), writes=True, special=bureau_writes_only_events_it_organises),
    ("events.edit_registration", "GET"): Spec("edit", EVERYONE, b_registration, tenant=("event_id", "reg_id"),
                                              special=bureau_writes_only_events_it_organises),
    ("events.edit_registration", "POST"): Spec("edit", EVERYONE, b_registration, tenant=("event_id", "reg_id"),
                                               ok=(302,), writes=True,
                                               special=bureau_writes_only_events_it_organises),
    ("events.confirmation", "GET"): Spec("view", EVERYONE, b_registration, tenant=("event_id", "reg_id")),
    ("events.checkin", "POST"): Spec("state", EVERYONE, b_registration, tenant=("event_id", "reg_id"), ok=(302,),
                                     writes=True, special=bureau_writes_only_events_it_organises),
    ("events.undo_checkin", "POST"): Spec("state", EVERYONE, b_undo_checkin, tenant=("event_id", "reg_id"),
                                          ok=(302,), writes=True, special=bureau_writes_only_events_it_organises),
    ("events.walk_in", "POST"): Spec("create", EVERYONE, b_walk_in, tenant=TENANT_EVENT, ok=(302,), writes=True,
                                     special=bureau_writes_only_events_it_organises),
    ("events.invite", "GET"): Spec("create", EVERYONE, b_invite, tenant=TENANT_EVENT,
                                   special=bureau_writes_only_events_it_organises),
    ("events.invite", "POST"): Spec("create", EVERYONE, b_invite, tenant=TENANT_EVENT, ok=(302,), writes=True,
                                    special=bureau_writes_only_events_it_organises),
    ("events.checkin_token", "GET"): Spec("view", EVERYONE, b_checkin_token, tenant=("token",)),
    ("events.checkin_token", "POST"): Spec("state", EVERYONE, b_checkin_token, tenant=("token",), ok=(302,),
                                           writes=True, special=bureau_writes_only_events_it_organises),
    ("events.export_page", "GET"): Spec("export", EVERYONE, b_export_page, tenant=TENANT_EVENT),
    ("events.export_page", "POST"): Spec("export", EVERYONE, b_export_page, tenant=TENANT_EVENT, ok=(303,)),
    ("events.export", "GET"): Spec("export", EVERYONE, b_event_export, tenant=TENANT_EVENT),
    ("events.sign_in_sheet", "GET"): Spec("export", EVERYONE, b_registration, tenant=TENANT_EVENT),
    ("events.delete_column_set", "POST"): Spec("delete", EVERYONE, b_column_set, tenant=("set_id",), ok=(302,),
                                               writes=True, special=own_column_sets_only),
    # credit applications, pledges, valuations, pools
    ("credit.index", "GET"): Spec("list", EVERYONE, b_credit_index),
    ("credit.sla", "GET"): Spec("list", EVERYONE, b_credit_list, tenantless=True),
    ("credit.ip_pledges", "GET"): Spec("list", EVERYONE, b_credit_list, tenantless=True),
    ("credit.new", "GET"): Spec("create", BANK, b_credit_new, tenantless=True),
    ("credit.new", "POST"): Spec("create", BANK, b_credit_new, ok=(302,), writes=True, tenantless=True),
    ("credit.detail", "GET"): Spec("view", EVERYONE, b_application, tenant=("app_id",)),
    ("credit.edit", "GET"): Spec("edit", BANK, b_application, tenant=("app_id",)),
    ("credit.edit", "POST"): Spec("edit", BANK, b_application, tenant=("app_id",), ok=(302,), writes=True),
    ("credit.move", "GET"): Spec("state", BANK, b_move, tenant=("app_id",)),
    ("credit.move", "POST"): Spec("state", BANK, b_move, tenant=("app_id",), ok=(302,), writes=True),
    ("credit.new_pledge", "GET"): Spec("create", BANK, b_new_pledge, tenant=("app_id",)),
    ("credit.new_pledge", "POST"): Spec("create", BANK, b_new_pledge, tenant=("app_id",), ok=(302,), writes=True),
    ("credit.register_pledge", "GET"): Spec("edit", BANK, b_register_pledge, tenant=("pledge_id",)),
    ("credit.register_pledge", "POST"): Spec("edit", BANK, b_register_pledge, tenant=("pledge_id",), ok=(302,),
                                             writes=True),
    ("credit.release_pledge", "POST"): Spec("state", BANK, b_release_pledge, tenant=("pledge_id",), ok=(302,),
                                            writes=True),
    ("credit.new_valuation", "GET"): Spec("create", BANK, b_new_valuation, tenant=("app_id",)),
    ("credit.new_valuation", "POST"): Spec("create", BANK, b_new_valuation, tenant=("app_id",), ok=(302,),
                                           writes=True),
    ("credit.complete_valuation", "GET"): Spec("edit", BANK, b_complete_valuation, tenant=("valuation_id",)),
    ("credit.complete_valuation", "POST"): Spec("edit", BANK, b_complete_valuation, tenant=("valuation_id",),
                                                ok=(302,), writes=True),
    ("credit.pools", "GET"): Spec("list", EVERYONE, b_pools),
    ("credit.pools", "POST"): Spec("create", EVERYONE, b_pools, ok=(302,), writes=True, tenantless=True,
                                   special=lambda role, rel: 403 if role in ("bureau", "admin") else None),
    ("credit.pool", "GET"): Spec("view", EVERYONE, b_pool, tenant=("pool_id",)),
    ("credit.pool", "POST"): Spec("edit", EVERYONE, b_pool, tenant=("pool_id",), ok=(302,), writes=True,
                                  special=lambda role, rel: 403 if role in ("bureau", "admin") else None),
    ("credit.pool_remove", "POST"): Spec("edit", BANK, b_pool_remove, tenant=("pool_id", "app_id"), ok=(302,),
                                         writes=True),
    ("credit.pool_export", "GET"): Spec("export", EVERYONE, b_pool_export, tenant=("pool_id",)),
    ("credit.calendar", "GET"): Spec("list", ADMIN, b_calendar, tenantless=True),
    ("credit.calendar", "POST"): Spec("create", ADMIN, b_calendar, ok=(302,), writes=True, tenantless=True),
    ("credit.calendar_delete", "POST"): Spec("delete", ADMIN, b_calendar_delete, ok=(302,), writes=True,
                                             tenantless=True),
}


# -- expectations ----------------------------------------------------------------------------------------------


def relation(user, ctx: Ctx, spec: Spec) -> str:
    """own / other (bank users), all (bureau, admin), self (the builder's per-user row is the principal's)."""
    if spec.special is own_column_sets_only:
        return "self" if user.id == ctx.rm.id else "other"
    if user.bank_id is None:
        return "all"
    return "own" if user.bank_id == ctx.bank.id else "other"


def expected(spec: Spec, user, rel: str):
    """'login', 403, 404 or 'ok'."""
    if user is None:
        return "login"
    role = user.role.value if hasattr(user.role, "value") else str(user.role)
    if spec.special is not None:
        outcome = spec.special(role, rel)
        if outcome is not None:
            return outcome
    if role not in spec.roles:
        return 403
    if spec.tenant and rel == "other":
        return 404
    return "ok"


# -- the walk ----------------------------------------------------------------------------------------------------


def _cases():
    out = []
    endpoints = {(r.endpoint, m): r for r, _e, methods in rules(collection_app()) for m in methods}
    for (endpoint, method), spec in MATRIX.items():
        if (endpoint, method) not in endpoints:
            continue  # reported by the inventory test
        for tenant in (("A",) if spec.tenantless else ("A", "B")):
            for principal in PRINCIPALS:
                out.append(pytest.param(endpoint, method, tenant, principal,
                                        id=f"{endpoint}-{method}-{principal or 'anonymous'}-{tenant}"))
    return out


@pytest.fixture(scope="module")
def shared(databases, tmp_path_factory):
    yield from shared_app(databases, tmp_path_factory)


def _url(app, endpoint: str, method: str, params: dict, query: Optional[dict]) -> str:
    with app.test_request_context():
        from flask import url_for

        return url_for(endpoint, **params, **(query or {}))


def _missing(spec: Spec, params: dict) -> dict:
    out = dict(params)
    for i, name in enumerate(spec.tenant):
        out[name] = MISSING_TOKEN if name == "token" else MISSING_ID + i
    return out


def _clear_flashes(client) -> None:
    with client.session_transaction() as sess:
        sess.pop("_flashes", None)


def _open(client, url, method, data):
    if method == "GET":
        return client.get(url)
    return client.open(url, method=method, data=data or {})


@pytest.mark.parametrize("endpoint,method,tenant,principal", _cases())
def test_role_action_tenant_matrix(shared, endpoint, method, tenant, principal):
    spec = MATRIX[(endpoint, method)]
    w = shared.world
    user = getattr(w, {"bureau": "bureau_user"}.get(principal, principal)) if principal else None
    ctx = Ctx(w, tenant, user)
    target = spec.build(ctx)
    db.session.commit()
    rel = relation(user, ctx, spec) if user is not None else "anonymous"
    outcome = expected(spec, user, rel)
    url = _url(shared.app, endpoint, method, target.params, target.query)
    client = shared.client_for(principal)
    _clear_flashes(client)
    with WriteSpy(db.engine) as spy:
        resp = _open(client, url, method, target.data)
    body = resp.get_data().decode("utf-8", "replace")
    written = spy.committed(ignore={"audit_entry"})
    where = f"{method} {url} as {principal or 'anonymous'} on bank {tenant}'s record"
    assert resp.status_code != 500, f"{where}: 500"

    if outcome == "login":
        assert resp.status_code == 302 and resp.headers["Location"].startswith("/login"), f"{where}: {resp.status_code}"
        assert written == [], f"{where}: refused but wrote {written}"
    elif outcome == 403:
        assert resp.status_code == 403, f"{where}: {resp.status_code}, expected 403"
        assert written == [], f"{where}: refused but wrote {written}"
    elif outcome == 404:
        assert resp.status_code == 404, f"{where}: {resp.status_code}, expected 404 like a missing record"
        assert written == [], f"{where}: refused but wrote {written}"
        missing_url = _url(shared.app, endpoint, method, _missing(spec, target.params), target.query)
        _clear_flashes(client)
        missing = _open(client, missing_url, method, target.data)
        assert missing.status_code == 404, f"{missing_url}: {missing.status_code}"
        assert normalise_body(body).replace(url, "{URL}") == normalise_body(
            missing.get_data(as_text=True)).replace(missing_url, "{URL}"), f"{where}: differs from a missing record"
        assert resp.headers.get("Content-Type") == missing.headers.get("Content-Type")
    else:
        assert resp.status_code in spec.ok, f"{where}: {resp.status_code}, expected {spec.ok}\n{body[:1500]}"
        if spec.writes:
            assert written, f"{where}: permitted, but nothing was written (is the test data valid?)"
        elif method == "GET":
            assert written == [], f"{where}: a GET wrote {written}"
        if target.marker is not None and resp.status_code == 200:
            shown = rel in ("own", "all", "self")
            text = json.dumps(resp.get_json(), ensure_ascii=False) if resp.is_json else body
            assert (target.marker in text) is shown, (
                f"{where}: the record {'is missing from' if shown else 'leaks into'} the answer")
    if target.after is not None:
        db.session.expire_all()
        target.after(resp)


# -- inventory: no route of these blueprints escapes the matrix ---------------------------------------------------


def test_every_route_of_the_bank_owned_blueprints_is_in_the_matrix():
    app = collection_app()
    seen = set()
    for rule, endpoint, methods in rules(app):
        if blueprint_of(endpoint) not in BLUEPRINTS:
            continue
        for method in methods:
            seen.add((endpoint, method))
            assert (endpoint, method) in MATRIX or (endpoint, method) in OUTSIDE_THE_MATRIX, (
                f"{method} {rule.rule} ({endpoint}) is not in tests/test_isolation_matrix.py MATRIX: say who may "
                f"use it")
            spec = MATRIX.get((endpoint, method))
            if spec is not None:
                assert set(spec.tenant) <= set(rule.arguments), f"{endpoint}: unknown tenant parameter"
    stale = (set(MATRIX) | set(OUTSIDE_THE_MATRIX)) - seen
    assert not stale, f"matrix rows for routes that no longer exist: {sorted(stale)}"


def test_the_bureau_writes_nothing_that_is_the_banks_to_write():
    """AC-7: every mutating row lets the bureau through only for its own contacts and events it co-organises."""
    allowed = set()
    for (endpoint, method), spec in MATRIX.items():
        if method == "GET":
            continue
        outcome = expected(spec, _Role("bureau"), "all")
        if outcome == "ok":
            allowed.add(endpoint)
    # contact_create: the bureau records its own contacts; events.create: a new event it organises itself;
    # export_page POST only redirects to a download; delete_column_set is per user (404 here)
    assert allowed == {"firms.contact_create", "events.create", "events.export_page"}


@dataclass
class _Role:
    role: str
    id: int = 0
    bank_id: Optional[int] = None


def test_a_bureau_co_organised_event_is_the_bureaus_to_write_too(shared):
    """The other half of the events rule: the bureau edits, checks in and registers at events it co-organises."""
    w = shared.world
    e = fe.event([w.bank_a, w.bureau], w.campaign, title=uniq("局行联办"))
    r = fe.registration(e, factories.firm(uniq("联办企业")), name="联办来宾", mob=mobile())
    db.session.commit()
    client = shared.client_for("bureau")
    _clear_flashes(client)
    assert client.get(f"/events/{e.id}/edit").status_code == 200
    assert client.post(f"/events/{e.id}/registrations/{r.id}/checkin").status_code == 302
    db.session.expire_all()
    assert db.session.get(type(r), r.id).checked_in_at is not None
    resp = client.post(f"/events/{e.id}/registrations/new", data={
        "firm_id": str(w.firm.id), "person_name": "局里推荐", "mobile": mobile(), "source": "bureau",
        "status": "registered", "preferred_bank_id": "0"})
    assert resp.status_code == 302


def test_assigning_an_owner_never_names_another_banks_user(shared):
    """AC-5 on the relationship: bank B cannot make bank A's RM the owner of its account (400, nothing written)."""
    w = shared.world
    f = factories.firm(uniq("归属企业"))
    db.session.commit()
    client = shared.client_for("rm_b")
    _clear_flashes(client)
    with WriteSpy(db.engine) as spy:
        resp = client.post(f"/firms/{f.id}/owner", data={"owner_id": str(w.rm_a.id)})
    assert resp.status_code == 400
    assert spy.committed(ignore={"audit_entry"}) == []


def test_the_matrix_has_the_promised_size():
    """6 principals × 2 tenants × every (endpoint, method) of the bank-owned blueprints, minus tenantless halves."""
    cases = _cases()
    assert len(cases) >= 6 * (2 * sum(1 for s in MATRIX.values() if not s.tenantless)
                              + sum(1 for s in MATRIX.values() if s.tenantless))
    kinds = {s.kind for s in MATRIX.values()}
    assert kinds == {"list", "view", "create", "edit", "delete", "export", "state"}


# -- AC-4: bad ids on every object route ----------------------------------------------------------------------------


def _object_routes():
    out = []
    for (endpoint, method), spec in MATRIX.items():
        ints = [p for p in spec.tenant if p != "token"]
        if ints:
            out.append(pytest.param(endpoint, method, id=f"{endpoint}-{method}"))
    return out


@pytest.mark.parametrize("endpoint,method", _object_routes())
def test_bad_ids_on_every_object_route_are_404_and_write_nothing(shared, endpoint, method):
    """AC-4: an existing id of the other bank is in the matrix; here the 9 malformed or absurd ids of SECURITY.md."""
    from tests.security_payloads import BAD_IDS

    spec = MATRIX[(endpoint, method)]
    ctx = Ctx(shared.world, "A", shared.world.rm_a)
    target = spec.build(ctx)
    db.session.commit()
    good = _url(shared.app, endpoint, method, target.params, target.query)
    client = shared.client_for("rm_a")
    for bad in BAD_IDS:
        url = good
        for name in spec.tenant:
            if name == "token":
                continue
            url = url.replace(f"/{target.params[name]}", f"/{bad}", 1)
        assert url != good
        with WriteSpy(db.engine) as spy:
            resp = _open(client, url, method, target.data)
        assert resp.status_code in (400, 404), f"{method} {url}: {resp.status_code}"
        assert spy.committed(ignore={"audit_entry"}) == [], f"{method} {url} wrote"
