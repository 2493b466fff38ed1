"""reference data: industries, GB/T 4754 sections, Shenzhen areas and streets, code lists

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 14:20:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

INDUSTRIES = [
    ("ai", "人工智能", "Artificial intelligence", True),
    ("low_altitude", "低空经济", "Low-altitude economy", True),
    ("smart_driving", "智能驾驶", "Intelligent driving", True),
    ("electronic_info", "电子信息", "Electronic information", True),
    ("biomedicine", "生物医药", "Biomedicine", True),
    ("low_carbon", "低碳产业", "Low-carbon industry", True),
    ("other", "其他", "Other", False),
]

# (code, zh, en, pledge_before_disbursement, is_ip_pledge)
CREDIT_PRODUCTS = [
    ("ip_pledge", "知识产权质押", "IP pledge loan", True, True),
    ("equipment_renewal", "技术设备更新", "Equipment renewal loan", False, False),
    ("working_capital", "流动资金", "Working capital loan", False, False),
    ("rnd_loan", "研发贷", "R&D loan", False, False),
    ("other", "其他", "Other", False, False),
]

DECLINE_REASONS = [
    ("insufficient_cashflow", "经营现金流不足", "Insufficient operating cash flow"),
    ("high_leverage", "负债率过高", "Leverage too high"),
    ("credit_record", "征信记录不良", "Adverse credit record"),
    ("ip_value_low", "知识产权评估价值不足", "IP valuation too low"),
    ("ip_ownership", "知识产权权属不清", "IP ownership unclear"),
    ("collateral", "担保条件不足", "Insufficient guarantee or collateral"),
    ("policy", "不符合授信政策", "Outside credit policy"),
    ("materials", "材料不齐或不实", "Incomplete or inaccurate materials"),
    ("other", "其他", "Other"),
]

VISIT_MODES = [
    ("on_site", "实地走访", "On site"),
    ("phone", "电话", "Phone"),
    ("online", "线上", "Online"),
    ("event", "活动现场", "At an event"),
    ("firm_came", "企业来访", "The firm came to us"),
]

# (code, zh, en, rank)
WILLINGNESS = [
    ("strong", "意愿强烈", "Strong", 1),
    ("some", "有一定意愿", "Some", 2),
    ("wait", "观望", "Wait and see", 3),
    ("refused", "明确拒绝", "Refused", 4),
    ("unreachable", "无法联系", "Unreachable", 5),
]

SECTIONS = [
    ("A", "农、林、牧、渔业", 1, 5), ("B", "采矿业", 6, 12), ("C", "制造业", 13, 43),
    ("D", "电力、热力、燃气及水生产和供应业", 44, 46), ("E", "建筑业", 47, 50), ("F", "批发和零售业", 51, 52),
    ("G", "交通运输、仓储和邮政业", 53, 60), ("H", "住宿和餐饮业", 61, 62),
    ("I", "信息传输、软件和信息技术服务业", 63, 65), ("J", "金融业", 66, 69), ("K", "房地产业", 70, 70),
    ("L", "租赁和商务服务业", 71, 72), ("M", "科学研究和技术服务业", 73, 75),
    ("N", "水利、环境和公共设施管理业", 76, 79), ("O", "居民服务、修理和其他服务业", 80, 82), ("P", "教育", 83, 83),
    ("Q", "卫生和社会工作", 84, 85), ("R", "文化、体育和娱乐业", 86, 90),
    ("S", "公共管理、社会保障和社会组织", 91, 96), ("T", "国际组织", 97, 97),
]

# (code, name, kind, gb2260, streets). Longgang's 11 streets are from the 2016 split; other
# districts' street lists are from general knowledge and editable by an administrator.
AREAS = [
    ("luohu", "罗湖区", "district", "440303", ["桂园街道", "黄贝街道", "东门街道", "翠竹街道", "南湖街道", "笋岗街道",
                                             "东湖街道", "莲塘街道", "东晓街道", "清水河街道"]),
    ("futian", "福田区", "district", "440304", ["园岭街道", "南园街道", "福田街道", "沙头街道", "香蜜湖街道",
                                              "梅林街道", "莲花街道", "华富街道", "福保街道", "华强北街道"]),
    ("nanshan", "南山区", "district", "440305", ["南头街道", "南山街道", "沙河街道", "蛇口街道", "招商街道",
                                               "粤海街道", "桃源街道", "西丽街道"]),
    ("baoan", "宝安区", "district", "440306", ["新安街道", "西乡街道", "航城街道", "福永街道", "福海街道",
                                             "沙井街道", "新桥街道", "松岗街道", "燕罗街道", "石岩街道"]),
    ("longgang", "龙岗区", "district", "440307", ["平湖街道", "坂田街道", "布吉街道", "吉华街道", "南湾街道",
                                                "横岗街道", "园山街道", "龙城街道", "龙岗街道", "宝龙街道", "坪地街道"]),
    ("yantian", "盐田区", "district", "440308", ["梅沙街道", "盐田街道", "沙头角街道", "海山街道"]),
    ("longhua", "龙华区", "district", "440309", ["观湖街道", "民治街道", "龙华街道", "大浪街道", "福城街道", "观澜街道"]),
    ("pingshan", "坪山区", "district", "440310", ["坪山街道", "马峦街道", "碧岭街道", "石井街道", "坑梓街道", "龙田街道"]),
    ("guangming", "光明区", "district", "440311", ["光明街道", "公明街道", "新湖街道", "凤凰街道", "玉塘街道", "马田街道"]),
    ("dapeng", "大鹏新区", "functional", None, ["葵涌街道", "大鹏街道", "南澳街道"]),
    ("shenshan", "深汕特别合作区", "cooperation", None, ["鹅埠镇", "小漠镇", "赤石镇", "鲘门镇"]),
]


def _table(name, *cols):
    return sa.table(name, *[sa.column(c) for c in cols])


def upgrade():
    op.bulk_insert(_table("industry", "code", "name_zh", "name_en", "is_priority", "sort_order"),
                   [dict(code=c, name_zh=z, name_en=e, is_priority=p, sort_order=i)
                    for i, (c, z, e, p) in enumerate(INDUSTRIES)])
    op.bulk_insert(_table("industry_section", "code", "name_zh", "first_division", "last_division"),
                   [dict(code=c, name_zh=n, first_division=a, last_division=b) for c, n, a, b in SECTIONS])
    op.bulk_insert(_table("area", "code", "name", "kind", "gb2260_code", "sort_order"),
                   [dict(code=c, name=n, kind=k, gb2260_code=g, sort_order=i) for i, (c, n, k, g, _) in enumerate(AREAS)])
    streets = []
    for code, _n, _k, _g, names in AREAS:
        streets += [dict(area_code=code, name=s, sort_order=i) for i, s in enumerate(names)]
    op.bulk_insert(_table("street", "area_code", "name", "sort_order"), streets)
    op.bulk_insert(_table("credit_product", "code", "name_zh", "name_en", "sort_order", "pledge_before_disbursement",
                          "is_ip_pledge"),
                   [dict(code=c, name_zh=z, name_en=e, sort_order=i, pledge_before_disbursement=p, is_ip_pledge=ip)
                    for i, (c, z, e, p, ip) in enumerate(CREDIT_PRODUCTS)])
    for table, rows in (("decline_reason", DECLINE_REASONS), ("visit_mode", VISIT_MODES)):
        op.bulk_insert(_table(table, "code", "name_zh", "name_en", "sort_order"),
                       [dict(code=c, name_zh=z, name_en=e, sort_order=i) for i, (c, z, e) in enumerate(rows)])
    op.bulk_insert(_table("willingness_level", "code", "name_zh", "name_en", "sort_order", "rank"),
                   [dict(code=c, name_zh=z, name_en=e, sort_order=r, rank=r) for c, z, e, r in WILLINGNESS])


def downgrade():
    for table in ("willingness_level", "visit_mode", "decline_reason", "credit_product", "street", "area",
                  "industry_section", "industry"):
        op.execute(sa.text(f"DELETE FROM {table}"))
