"""A campaign built only through the ledger importers (台账导入), whose true numbers are known by construction.

``build_campaign_from_ledgers(world, runner, folder)`` writes the five ledgers of DOMAIN.md "The ledger" as the
banks would send them (XLSX, and CSV in UTF-8 with BOM or GB18030, Chinese headers) and imports every one with
``flask --app wsgi crm import KIND FILE --campaign ZCR2026 --as USERNAME``, the same engine the /imports page
runs. The ledgers carry neither pledge registrations nor disbursements, so those few steps are recorded after
the import the way an RM records them on the application page (``crm.credit.services``, as that RM).

The cast (``tests.factories.World``: bank A = SZRCB with branch SZRCB-LG, bank B = ICBC-SZ with branch ICBC-FT;
campaign ZCR2026 = 2026-01-01..2026-12-31; the date range ``RANGE`` = 2026-03-01..2026-06-30; nothing at all
happens before 2026-03-01, so "cumulative to the end of the range" equals "in the range"):

firms (firms ledger of bank A as XLSX; bank B's firms ledger as GB18030 CSV repeats F1 and F5, shared records)
  F1 双行科技     ai               龙岗区 坂田   high-tech since 2024-01-10 (valid to 2027-01-09)
  F2 芯智科技     ai               龙岗区 坂田   high-tech since 2025-06-01
  F3 康源生物医药 biomedicine      龙岗区 布吉   reached only through an event (checked in at EA1)
  F4 微电子信息   electronic_info  龙岗区 布吉   registered at EA1, never checked in, never visited
  F5 福田低碳     low_carbon       福田区 福田   (bank B's ledger only)
  F6 坂田智能     ai               龙岗区 坂田   checked in at EB1, which was then cancelled
  F7 智驾科技     smart_driving    龙岗区 布吉   high-tech 2023-03-01, expired 2026-02-28, before its decision
  F8 龙岗算力     ai               龙岗区 龙城   high-tech since 2025-06-01
  F9 低空飞行器   (not in any firms ledger: created by bank B's attendance ledger → industry "other", no district)

visits (bank A's ledger as XLSX by rm_a; bank B's as GB18030 CSV by mgr_b)
  V1 A F1 2026-03-02 rm_a  need 300       V5 B F1 2026-03-05 rm_b phone   (F1: visited by two banks)
  V2 A F2 2026-03-10 rm_a  need 500, companions rm_a2 and bureau
  V3 A F6 2026-04-20 rm_a2 phone          V6 B F5 2026-04-02 rm_b
  V4 A F8 2026-07-15 rm_a  (after RANGE)  V7 B F7 2026-05-12 mgr_b (bank B's head office: no branch)

events (organised by the importer's organisation: rm_a → branch SZRCB-LG, mgr_b → bank ICBC-SZ)
  EA1 2026-03-20 held      生物医药;人工智能  staff rm_a, mgr_a   check-ins F3 ×2 people, F2; F4 registered only
  EA2 2026-06-01 planned   人工智能           staff rm_a3 (a user who does nothing else)
  EB1 2026-04-15 cancelled 低碳产业           staff rm_b2 (nothing else)   F6 checked in before the cancellation
  EB2 2026-05-08 held      电子信息           staff rm_b          check-ins F1, F5, F9 (new firm)
  EB3 2026-07-10 held      智能驾驶           staff mgr_b         check-in F7            (after RANGE)
  EB1 is first imported as planned (筹备中), its attendance imported, then a second events ledger says 已取消.

credits (bank A's ledger as XLSX by rm_a; bank B's as UTF-8-BOM CSV by rm_b). SLA tiers (VALIDATORS.md /
crm.core.workdays): requested ≤ 1000万 → 3 working days, ≤ 3000万 → 5, more → 10, counted from the day after
acceptance to the decision day inclusive, on the 2026 PRC calendar (Qingming Mon 04-06 off; Labour Day
05-01..05-05 off with Sat 05-09 a make-up working day; Dragon Boat Fri 06-19 off).
  A1 A F2 IP pledge  1000万 exactly (3 days)   acc Mon 03-16, approved Thu 03-19 = working day 3: HIT
        approved 800, discount 20 BP, first loan; pledge ZL…0001 registered 600 on 03-25; disbursed 800 on 03-30
  A3 A F6 R&D loan    100万                    acc 04-21, withdrawn 04-24 (not decided: outside the SLA)
  A5 A F8 IP pledge  3000.000001万 (10 days)  acc Wed 06-24, approved Wed 07-08 = working day 10: HIT
        (06-25, 06-26, 06-29, 06-30, 07-01, 07-02, 07-03, 07-06, 07-07, 07-08); decided after RANGE;
        approved 5000, discount 0 BP (a recorded zero still weighs in the mean); pledge registered 4000 on 07-20
  A6 A F1 R&D loan    200万 (3 days)           acc Wed 05-06, approved Mon 05-11 = working day 4
        (05-07, 05-08, make-up Sat 05-09, 05-11): MISS (a Mon-Fri count would say 3, a hit); discount 5
  A7 A F2 equipment   100万 (3 days)           acc Wed 04-29, approved Thu 05-07 = working day 3
        (04-30, then 05-01..05-05 off, 05-06, 05-07): HIT (a Mon-Fri count would say 6); discount 10
  A2 B F5 working cap 1000.000001万 (5 days)  acc Wed 04-01, declined Thu 04-09 = working day 5
        (04-02, 04-03, Qingming 04-06 off, 04-07, 04-08, 04-09): HIT
  A4 B F7 working cap 3000万 exactly (5 days)  acc Fri 04-03, approved Tue 04-14 = working day 6
        (04-07, 04-08, 04-09, 04-10, 04-13, 04-14): MISS; approved 2500, discount 10; F7's certificate had
        expired (not high-tech as of the decision); disbursed 2500 on 07-05 (after RANGE)
  A8 B F3 working cap 300万                    acc 06-01, under review (applied, undecided)
  A10 B F5 IP pledge  500万 (3 days)           acc Mon 05-18, approved Thu 05-21 = working day 3: HIT
        approved 300, discount 15, first loan; two patents, one registered 250 on 05-28, one never registered
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from crm.auth.models import Role, User
from crm.core.formatting import wan_to_fen
from crm.core.scoping import scope_for, scoped
from crm.credit import services as credit_services
from crm.credit.models import CreditApplication, Stage
from crm.extensions import db
from crm.firms.models import Firm
from tests import factories
from tests.factories_firms import csv_bytes, xlsx_bytes

CAMPAIGN = "ZCR2026"
RANGE = (date(2026, 3, 1), date(2026, 6, 30))

# Valid unified social credit codes (GB 32100-2015 check character), one per firm.
CODES = {
    "F1": "91440307MA5LD00011", "F2": "91440307MA5LD00024", "F3": "91440307MA5LD00037",
    "F4": "91440307MA5LD0004A", "F5": "91440307MA5LD0005D", "F6": "91440307MA5LD0006G",
    "F7": "91440307MA5LD0007K", "F8": "91440307MA5LD0008N", "F9": "91440307MA5LD0009R",
}
NAMES = {
    "F1": "深圳市双行科技有限公司", "F2": "深圳市芯智科技有限公司", "F3": "深圳市康源生物医药有限公司",
    "F4": "深圳市微电子信息有限公司", "F5": "深圳市福田低碳科技有限公司", "F6": "深圳市坂田智能有限公司",
    "F7": "深圳市智驾科技有限公司", "F8": "深圳市龙岗算力有限公司", "F9": "深圳市低空飞行器有限公司",
}
# Granted patents (CNIPA numbers with their check digit).
PATENTS = {"A1": "ZL202310880001.9", "A5": "ZL202310880002.3", "A10": "ZL202410880003.2; ZL202410880004.7"}

FIRM_HEADERS = ["企业名称", "统一社会信用代码", "所属区", "所属街道", "重点产业", "国民经济行业门类", "高新技术企业",
                "高企证书编号", "高企发证日期", "专精特新", "发明专利数", "实用新型数", "外观设计数", "软件著作权数",
                "联系人", "联系电话"]
VISIT_HEADERS = ["统一社会信用代码", "走访日期", "走访方式", "走访人", "陪同人员", "意愿等级", "融资需求金额(万元)",
                 "融资用途", "走访纪要", "下次跟进日期"]
EVENT_HEADERS = ["活动编号", "活动名称", "活动类型", "举办日期", "地点", "状态", "重点产业", "工作人员"]
ATTENDANCE_HEADERS = ["活动编号", "统一社会信用代码", "单位名称", "姓名", "职务", "联系电话", "签到时间"]
CREDIT_HEADERS = ["统一社会信用代码", "业务品种", "申请金额(万元)", "受理日期", "审批日期", "审批结果", "授信金额(万元)",
                  "执行利率(%)", "优惠BP", "期限(月)", "首贷户", "质押专利号", "经办客户经理", "否决原因"]


def _firm(key, area, street, industry, section, high_tech_since=None, tier="", inventions=0):
    cert = f"GR{high_tech_since.year}44{key[1:]:0>6}" if high_tech_since else ""
    return [NAMES[key], CODES[key], area, street, industry, section, "是" if high_tech_since else "否", cert,
            high_tech_since or "", tier, inventions, 0, 0, 0, "", ""]


FIRMS_A = [FIRM_HEADERS,
           _firm("F1", "龙岗区", "坂田街道", "人工智能", "I", date(2024, 1, 10), "专精特新中小企业", 4),
           _firm("F2", "龙岗区", "坂田街道", "人工智能", "C", date(2025, 6, 1), inventions=6),
           _firm("F3", "龙岗区", "布吉街道", "生物医药", "C"),
           _firm("F4", "龙岗区", "布吉街道", "电子信息", "C"),
           _firm("F6", "龙岗区", "坂田街道", "人工智能", "I"),
           _firm("F7", "龙岗区", "布吉街道", "智能驾驶", "C", date(2023, 3, 1)),
           _firm("F8", "龙岗区", "龙城街道", "人工智能", "I", date(2025, 6, 1), inventions=2)]
FIRMS_B = [FIRM_HEADERS,
           _firm("F1", "龙岗区", "坂田街道", "人工智能", "I", date(2024, 1, 10), "专精特新中小企业", 4),
           _firm("F5", "福田区", "福田街道", "低碳产业", "D")]

VISITS_A = [VISIT_HEADERS,
            [CODES["F1"], date(2026, 3, 2), "实地走访", "rm_a", "", "意愿强烈", 300, "流动资金", "了解融资需求", ""],
            [CODES["F2"], date(2026, 3, 10), "实地走访", "rm_a", "rm_a2、bureau", "有一定意愿", 500, "知识产权质押",
             "区科创局陪同走访", ""],
            [CODES["F6"], date(2026, 4, 20), "电话", "rm_a2", "", "观望", "", "", "电话回访", ""],
            [CODES["F8"], date(2026, 7, 15), "实地走访", "rm_a", "", "意愿强烈", "", "", "", ""]]
VISITS_B = [VISIT_HEADERS,
            [CODES["F1"], "2026/3/5", "电话", "rm_b", "", "观望", "", "", "电话了解需求", ""],
            [CODES["F5"], "2026-04-02", "实地走访", "rm_b", "", "有一定意愿", "", "", "", ""],
            [CODES["F7"], "2026-05-12", "实地走访", "mgr_b", "", "意愿强烈", "", "", "分行领导走访", ""]]

EVENTS_A = [EVENT_HEADERS,
            ["EA1", "生物医药与人工智能专场", "行业专场", date(2026, 3, 20), "天安数码城", "已举办", "生物医药;人工智能",
             "rm_a;mgr_a"],
            ["EA2", "人工智能园区专场", "园区专场", date(2026, 6, 1), "坂田", "筹备中", "人工智能", "rm_a3"]]


def events_b(eb1_status: str) -> list:
    return [EVENT_HEADERS,
            ["EB1", "低碳产业对接会", "行业专场", "2026-04-15", "福田", eb1_status, "低碳产业", "rm_b2"],
            ["EB2", "电子信息专场", "行业专场", "2026-05-08", "福田", "已举办", "电子信息", "rm_b"],
            ["EB3", "智能驾驶专场", "行业专场", "2026-07-10", "福田", "已举办", "智能驾驶", "mgr_b"]]


ATTENDANCE_A = [ATTENDANCE_HEADERS,
                ["EA1", CODES["F3"], NAMES["F3"], "张一", "财务总监", "13900000001", datetime(2026, 3, 20, 14, 5)],
                ["EA1", CODES["F3"], NAMES["F3"], "张二", "总经理", "13900000002", datetime(2026, 3, 20, 14, 6)],
                ["EA1", CODES["F4"], NAMES["F4"], "李四", "财务经理", "13900000003", None],
                ["EA1", CODES["F2"], NAMES["F2"], "王五", "董事长", "13900000004", datetime(2026, 3, 20, 14, 20)]]
ATTENDANCE_B = [ATTENDANCE_HEADERS,
                ["EB1", CODES["F6"], NAMES["F6"], "赵六", "总经理", "13900000005", "2026-04-15 09:30"],
                ["EB2", CODES["F1"], NAMES["F1"], "钱七", "财务总监", "13900000006", "2026-05-08 14:00"],
                ["EB2", CODES["F5"], NAMES["F5"], "孙八", "总经理", "13900000007", "2026-05-08 14:02"],
                ["EB2", CODES["F9"], NAMES["F9"], "周九", "董事长", "13900000008", "2026-05-08 14:10"],
                ["EB3", CODES["F7"], NAMES["F7"], "吴十", "财务总监", "13900000009", "2026-07-10 10:00"]]


def _credit(key, product, requested, accepted, decided, result, approved="", rate="", discount="", term="",
            first="否", rm="rm_a", reason="", patents=""):
    return [CODES[key], product, requested, accepted, decided, result, approved, rate, discount, term, first,
            patents, rm, reason]


CREDITS_A = [CREDIT_HEADERS,
             _credit("F2", "知识产权质押", 1000, "2026-03-16", "2026-03-19", "通过", 800, "3.45", 20, 12, "是",
                     patents=PATENTS["A1"]),
             _credit("F6", "研发贷", 100, "2026-04-21", "2026-04-24", "撤回", rm="rm_a2"),
             _credit("F8", "知识产权质押", "3000.000001", "2026-06-24", "2026-07-08", "通过", 5000, "3.2", 0, 24,
                     rm="mgr_a", patents=PATENTS["A5"]),
             _credit("F1", "研发贷", 200, "2026-05-06", "2026-05-11", "通过", 200, "3.5", 5, 12),
             _credit("F2", "技术设备更新", 100, "2026-04-29", "2026-05-07", "通过", 100, "3.3", 10, 36)]
CREDITS_B = [CREDIT_HEADERS,
             _credit("F5", "流动资金", "1000.000001", "2026-04-01", "2026-04-09", "否决", rm="rm_b",
                     reason="负债率过高"),
             _credit("F7", "流动资金", 3000, "2026-04-03", "2026-04-14", "通过", 2500, "3.1", 10, 12, rm="rm_b"),
             _credit("F3", "流动资金", 300, "2026-06-01", "", "审批中", rm="rm_b"),
             _credit("F5", "知识产权质押", 500, "2026-05-18", "2026-05-21", "通过", 300, "3.4", 15, 12, "是",
                     rm="rm_b", patents=PATENTS["A10"])]

#: (ledger kind, file name, rows, importing user, encoding or "xlsx", needs the campaign) in import order
LEDGER_FILES = [
    ("firms", "企业台账-农商行.xlsx", FIRMS_A, "rm_a", "xlsx"),
    ("firms", "企业台账-工行.csv", FIRMS_B, "mgr_b", "gb18030"),
    ("visits", "走访台账-农商行.xlsx", VISITS_A, "rm_a", "xlsx"),
    ("visits", "走访台账-工行.csv", VISITS_B, "mgr_b", "gb18030"),
    ("events", "活动台账-农商行.xlsx", EVENTS_A, "rm_a", "xlsx"),
    ("events", "活动台账-工行.csv", events_b("筹备中"), "mgr_b", "utf-8-sig"),
    ("attendance", "签到台账-农商行.xlsx", ATTENDANCE_A, "rm_a", "xlsx"),
    ("attendance", "签到台账-工行.csv", ATTENDANCE_B, "mgr_b", "gb18030"),
    ("events", "活动台账-工行-更新.csv", events_b("已取消"), "mgr_b", "utf-8-sig"),
    ("credits", "授信台账-农商行.xlsx", CREDITS_A, "rm_a", "xlsx"),
    ("credits", "授信台账-工行.csv", CREDITS_B, "rm_b", "utf-8-sig"),
]
#: what each import reports: (created, updated, unchanged)
IMPORT_COUNTS = [(7, 0, 0), (1, 1, 0), (4, 0, 0), (3, 0, 0), (2, 0, 0), (3, 0, 0), (4, 0, 0), (5, 0, 0),
                 (0, 1, 2), (5, 0, 0), (4, 0, 0)]


@dataclass
class LedgerCampaign:
    world: factories.World
    folder: Path
    outputs: list = field(default_factory=list)
    apps: dict = field(default_factory=dict)


def write_ledgers(folder: Path) -> list[tuple[str, Path, str]]:
    """Write every ledger file; returns (kind, path, username) in import order."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for kind, name, rows, username, encoding in LEDGER_FILES:
        path = folder / name
        path.write_bytes(xlsx_bytes(rows) if encoding == "xlsx" else csv_bytes(rows, encoding))
        out.append((kind, path, username))
    return out


def import_ledgers(runner, files) -> list[str]:
    """Run ``crm import`` for each file; returns each command's output (stops at the first failure)."""
    outputs = []
    for kind, path, username in files:
        args = ["crm", "import", kind, str(path), "--as", username]
        if kind != "firms" and kind != "attendance":
            args += ["--campaign", CAMPAIGN]
        result = runner.invoke(args=args)
        assert result.exit_code == 0, f"{path.name}: {result.output}"
        outputs.append(result.output)
    return outputs


def _app(name: str) -> CreditApplication:
    firm_key = {"A1": "F2", "A4": "F7", "A5": "F8", "A10": "F5"}[name]
    product = {"A1": "ip_pledge", "A4": "working_capital", "A5": "ip_pledge", "A10": "ip_pledge"}[name]
    return db.session.scalar(sa.select(CreditApplication).join(Firm).where(
        Firm.credit_code == CODES[firm_key], CreditApplication.product_code == product))


def _user(username: str) -> User:
    return db.session.scalar(sa.select(User).where(User.username == username))


def record_after_the_ledgers() -> dict[str, CreditApplication]:
    """Pledge registrations and disbursements (no ledger column carries them), as the RM records them."""
    granted, expires = date(2021, 5, 1), date(2041, 4, 30)
    wan = lambda n: wan_to_fen(Decimal(n))  # noqa: E731
    rm_a, mgr_a, rm_b = _user("rm_a"), _user("mgr_a"), _user("rm_b")
    with scoped(scope_for(rm_a)):
        a1 = _app("A1")
        credit_services.register_pledge(a1.pledges[0], rm_a, "Y2026440001", date(2026, 3, 25), wan(600),
                                        granted_on=granted, expires_on=expires)
        credit_services.move(a1, Stage.CONTRACTED, rm_a, date(2026, 3, 24))
        credit_services.move(a1, Stage.PLEDGE_REGISTERED, rm_a, date(2026, 3, 25))
        credit_services.move(a1, Stage.DISBURSED, rm_a, date(2026, 3, 30),
                             decision=credit_services.Decision(disbursed_fen=wan(800)))
    with scoped(scope_for(mgr_a)):
        a5 = _app("A5")
        credit_services.register_pledge(a5.pledges[0], mgr_a, "Y2026440002", date(2026, 7, 20), wan(4000),
                                        granted_on=granted, expires_on=expires)
    with scoped(scope_for(rm_b)):
        a4 = _app("A4")
        credit_services.move(a4, Stage.CONTRACTED, rm_b, date(2026, 6, 30))
        credit_services.move(a4, Stage.DISBURSED, rm_b, date(2026, 7, 5),
                             decision=credit_services.Decision(disbursed_fen=wan(2500)))
        a10 = _app("A10")
        first = min(a10.pledges, key=lambda p: p.ip_asset.patent_no)
        credit_services.register_pledge(first, rm_b, "Y2026440003", date(2026, 5, 28), wan(250),
                                        granted_on=granted, expires_on=expires)
    db.session.commit()
    return {"A1": a1, "A4": a4, "A5": a5, "A10": a10}


def build_campaign_from_ledgers(world: factories.World, runner, folder: Path) -> LedgerCampaign:
    """Two extra bank users, the eleven ledger files, their imports, then the post-ledger steps."""
    factories.user("rm_a3", Role.RM, world.branch_a, "孙经理")  # staffs only the planned event EA2
    factories.user("rm_b2", Role.RM, world.branch_b, "周经理")  # staffs only the cancelled event EB1
    db.session.commit()
    lc = LedgerCampaign(world, folder)
    files = write_ledgers(folder)
    lc.outputs = import_ledgers(runner, files)
    lc.apps = record_after_the_ledgers()
    return lc


def D(x) -> Decimal:  # noqa: N802
    return Decimal(str(x))
