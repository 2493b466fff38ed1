"""Small factories: each returns a flushed object; the test commits when it needs to."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from typing import Optional

from crm.auth import passwords
from crm.auth.models import Role, User
from crm.core.validators import credit_code_check_char
from crm.extensions import db
from crm.firms.models import Contact, Firm, FirmAccount
from crm.orgs.models import Campaign, Organisation, OrgKind
from crm.visits.models import FollowUp, Visit

TEST_PASSWORD = "Correct-Horse-77"
_seq = itertools.count(1)


def credit_code(n: Optional[int] = None) -> str:
    """A valid unified social credit code, unique per n."""
    n = next(_seq) if n is None else n
    body = f"91440300MA5{n:06d}"[:17]
    body = body[:11] + f"{n:06d}"
    return body + credit_code_check_char(body)


def org(code: str, name: str = "", kind: OrgKind = OrgKind.BANK, parent: Optional[Organisation] = None) -> Organisation:
    o = Organisation(code=code, name=name or code, short_name=name or code, kind=kind, parent=parent)
    db.session.add(o)
    db.session.flush()
    return o


def user(username: str, role: Role, organisation: Organisation, name: str = "") -> User:
    bank = organisation.bank if role in (Role.RM, Role.BANK_MANAGER) else None
    u = User(username=username, name=name or username, role=role, org=organisation,
             bank_id=bank.id if bank else None, password_hash=passwords.hash_password(TEST_PASSWORD))
    db.session.add(u)
    db.session.flush()
    return u


def campaign(code: str = "ZCR2026", orgs=(), start: date = date(2026, 1, 1), end: date = date(2026, 12, 31)) -> Campaign:
    c = Campaign(code=code, name="知产融专项活动", district="龙岗区", start_on=start, end_on=end, organisations=list(orgs))
    db.session.add(c)
    db.session.flush()
    return c


def firm(name: Optional[str] = None, industry: str = "ai", **kw) -> Firm:
    n = next(_seq)
    f = Firm(name=name or f"深圳测试科技有限公司{n}", credit_code=kw.pop("credit_code", None) or credit_code(n),
             industry_code=industry, area_code=kw.pop("area_code", "longgang"), **kw)
    db.session.add(f)
    db.session.flush()
    return f


def contact(firm_: Firm, owner: Organisation, name: str = "张三", mobile: str = "13800138000", **kw) -> Contact:
    c = Contact(firm=firm_, bank_id=owner.id, name=name, mobile=mobile, **kw)
    db.session.add(c)
    db.session.flush()
    return c


def visit(firm_: Firm, rm: User, camp: Campaign, visited_on: date = date(2026, 3, 2), **kw) -> Visit:
    v = Visit(firm=firm_, bank_id=rm.bank_id, branch_id=rm.org_id if rm.org.is_branch else None, rm=rm,
              campaign=camp, visited_on=visited_on, mode_code=kw.pop("mode_code", "on_site"),
              summary=kw.pop("summary", "了解企业融资需求"), **kw)
    db.session.add(v)
    db.session.flush()
    return v


def follow_up(firm_: Firm, assignee: User, due_on: date, title: str = "回访", **kw) -> FollowUp:
    f = FollowUp(firm=firm_, bank_id=assignee.bank_id, assignee=assignee, due_on=due_on, title=title, **kw)
    db.session.add(f)
    db.session.flush()
    return f


def account(firm_: Firm, bank: Organisation, owner: Optional[User] = None) -> FirmAccount:
    a = FirmAccount(firm=firm_, bank_id=bank.id, owner=owner)
    db.session.add(a)
    db.session.flush()
    return a


@dataclass
class World:
    bank_a: Organisation
    branch_a: Organisation
    bank_b: Organisation
    branch_b: Organisation
    bureau: Organisation
    rm_a: User
    rm_a2: User
    mgr_a: User
    rm_b: User
    mgr_b: User
    bureau_user: User
    admin: User
    campaign: Campaign
    firm: Firm

    @classmethod
    def build(cls) -> "World":
        bank_a = org("SZRCB", "深圳农商银行")
        branch_a = org("SZRCB-LG", "农商行龙岗支行", parent=bank_a)
        bank_b = org("ICBC-SZ", "工商银行深圳分行")
        branch_b = org("ICBC-FT", "工行福田支行", parent=bank_b)
        bureau = org("LG-KCJ", "龙岗区科技创新局", kind=OrgKind.BUREAU)
        rm_a = user("rm_a", Role.RM, branch_a, "李经理")
        rm_a2 = user("rm_a2", Role.RM, branch_a, "王经理")
        mgr_a = user("mgr_a", Role.BANK_MANAGER, bank_a)
        rm_b = user("rm_b", Role.RM, branch_b, "赵经理")
        mgr_b = user("mgr_b", Role.BANK_MANAGER, bank_b)
        bureau_user = user("bureau", Role.BUREAU, bureau, "陈科长")
        admin = user("admin", Role.ADMIN, bureau, "管理员")
        camp = campaign(orgs=[bank_a, bank_b, bureau])
        f = firm("深圳市共享科技有限公司")
        return cls(bank_a, branch_a, bank_b, branch_b, bureau, rm_a, rm_a2, mgr_a, rm_b, mgr_b, bureau_user, admin,
                   camp, f)
