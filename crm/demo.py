"""The demo campaign (`flask --app wsgi crm demo-data`): a 「知产融」-style campaign in Longgang.

Two banks with branches and relationship managers, the district bureau, two sub-district offices, two parks,
about 200 firms with valid credit codes, visits, follow-ups, events with registrations and check-ins, and credit
applications at every stage with IP pledges, valuations and a securitisation pool.

Everything is built from ``random.Random(seed)`` and dated relative to the fixed :data:`ANCHOR` day, so one
seed always gives the same firms, visits and numbers. Only what the home pages must show as *current* is dated
relative to today (a second random stream, so the rest never depends on the day): overdue and upcoming
follow-ups, the planned events, and the high-tech certificates about to expire. Secrets (session, check-in and
public registration tokens) stay random.

Rows are written directly with the models (seed data: no services, no audit entries); the caller commits.
"""
from __future__ import annotations

import calendar
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Optional

import sqlalchemy as sa

from crm.auth.models import Role, User
from crm.auth.passwords import hash_password
from crm.core import workdays
from crm.core.formatting import FEN_PER_WAN, LOCAL_TZ, today_local
from crm.core.models import CreditProduct, HolidayOverride, Industry, Street
from crm.core.validators import (
    CREDIT_CODE_CHARSET, credit_code_check_char, credit_code_org_check_ok, patent_check_char,
)
from crm.credit.models import (
    CreditApplication, IpAsset, OwnerRelation, PatentKind, Pledge, PledgeStatus, SecuritisationPool, Stage,
    StageChange, Valuation,
)
from crm.events.models import (
    CheckinMethod, Event, EventKind, EventStatus, Registration, RegistrationSource, RegistrationStatus,
    new_public_token,
)
from crm.extensions import db
from crm.firms.models import Contact, Firm, FirmAccount, SizeClass, SmeTier
from crm.orgs.models import Campaign, Organisation, OrgKind, Target
from crm.visits.models import FollowUp, FollowUpStatus, Visit

#: the password of every demo user (passes crm.auth.passwords.check_policy)
DEMO_PASSWORD = "Kapok-Lychee-Harbour-58"

#: one login per role, as the command prints them
DEMO_LOGINS: list[tuple[str, str]] = [
    ("rm", "chenhao"),
    ("bank_manager", "limin"),
    ("bureau", "wangfang"),
    ("admin", "sysadmin"),
]

DEMO_LOGINS_NOTE = (
    "演示账号 / demo logins (密码 / password: %s): " % DEMO_PASSWORD
    + ", ".join(f"{role} {username}" for role, username in DEMO_LOGINS)
)

#: the demo's "as of" day: every dated record of the story lies on or before it
ANCHOR = date(2026, 11, 20)
CAMPAIGN_CODE = "ZCR-LG-2026"
CAMPAIGN_START = date(2026, 3, 1)
CAMPAIGN_END = date(2026, 12, 31)
FIRST_VISIT_DAY = date(2026, 3, 2)

N_FIRMS = 200


def wan(n: int) -> int:
    """万元 to fen (integers only)."""
    return int(n) * FEN_PER_WAN


def local_ts(day: date, hour: int, minute: int = 0) -> datetime:
    """A Shenzhen wall-clock time as an aware UTC datetime."""
    return datetime.combine(day, time(hour, minute), tzinfo=LOCAL_TZ).astimezone(timezone.utc)


def add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    year, month = d.year + m // 12, m % 12 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def years_later(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


# ----------------------------------------------------------------------------------------------------------
# Fixed cast: organisations and users
# ----------------------------------------------------------------------------------------------------------

# (code, name, short name, kind, parent code)
ORGS = [
    ("SZRCB", "深圳农村商业银行", "深圳农商银行", OrgKind.BANK, None),
    ("SZRCB-LG", "深圳农村商业银行龙岗支行", "农商行龙岗支行", OrgKind.BANK, "SZRCB"),
    ("SZRCB-BT", "深圳农村商业银行坂田支行", "农商行坂田支行", OrgKind.BANK, "SZRCB"),
    ("SZRCB-BJ", "深圳农村商业银行布吉支行", "农商行布吉支行", OrgKind.BANK, "SZRCB"),
    ("SZRCB-PH", "深圳农村商业银行平湖支行", "农商行平湖支行", OrgKind.BANK, "SZRCB"),
    ("ICBC-SZ", "中国工商银行深圳市分行", "工商银行深圳分行", OrgKind.BANK, None),
    ("ICBC-LG", "中国工商银行深圳龙岗支行", "工行龙岗支行", OrgKind.BANK, "ICBC-SZ"),
    ("ICBC-BT", "中国工商银行深圳坂田支行", "工行坂田支行", OrgKind.BANK, "ICBC-SZ"),
    ("ICBC-HG", "中国工商银行深圳横岗支行", "工行横岗支行", OrgKind.BANK, "ICBC-SZ"),
    ("LG-KCJ", "深圳市龙岗区科技创新局", "龙岗区科技创新局", OrgKind.BUREAU, None),
    ("LG-BT-JD", "龙岗区坂田街道办事处", "坂田街道", OrgKind.STREET, None),
    ("LG-PH-JD", "龙岗区平湖街道办事处", "平湖街道", OrgKind.STREET, None),
    ("TAYG", "天安云谷产业园", "天安云谷", OrgKind.PARK, None),
    ("LG-DTC", "深圳国际低碳城", "国际低碳城", OrgKind.PARK, None),
]

# (username, name, role, org code)
USERS = [
    ("limin", "李敏", Role.BANK_MANAGER, "SZRCB"),
    ("chenhao", "陈浩", Role.RM, "SZRCB-LG"),
    ("huanglina", "黄丽娜", Role.RM, "SZRCB-LG"),
    ("zhouwei", "周伟", Role.RM, "SZRCB-BT"),
    ("wuting", "吴婷", Role.RM, "SZRCB-BT"),
    ("zhengkai", "郑凯", Role.RM, "SZRCB-BJ"),
    ("sunyue", "孙悦", Role.RM, "SZRCB-BJ"),
    ("majun", "马俊", Role.RM, "SZRCB-PH"),
    ("zhaolei", "赵磊", Role.BANK_MANAGER, "ICBC-SZ"),
    ("linxiaoyan", "林晓燕", Role.RM, "ICBC-LG"),
    ("hezhiqiang", "何志强", Role.RM, "ICBC-LG"),
    ("luodan", "罗丹", Role.RM, "ICBC-BT"),
    ("xiewenbin", "谢文斌", Role.RM, "ICBC-BT"),
    ("xujiayi", "许嘉怡", Role.RM, "ICBC-HG"),
    ("wangfang", "王芳", Role.BUREAU, "LG-KCJ"),
    ("liuyang", "刘洋", Role.BUREAU, "LG-KCJ"),
    ("sysadmin", "系统管理员", Role.ADMIN, "LG-KCJ"),
]

#: which branch of each bank serves a street
BRANCH_FOR_STREET = {
    "SZRCB": {"龙城街道": "SZRCB-LG", "龙岗街道": "SZRCB-LG", "宝龙街道": "SZRCB-LG", "园山街道": "SZRCB-LG",
              "坪地街道": "SZRCB-LG", "坂田街道": "SZRCB-BT", "吉华街道": "SZRCB-BJ", "布吉街道": "SZRCB-BJ",
              "南湾街道": "SZRCB-BJ", "平湖街道": "SZRCB-PH", "横岗街道": "SZRCB-PH"},
    "ICBC-SZ": {"龙城街道": "ICBC-LG", "龙岗街道": "ICBC-LG", "宝龙街道": "ICBC-LG", "园山街道": "ICBC-HG",
                "坪地街道": "ICBC-LG", "坂田街道": "ICBC-BT", "吉华街道": "ICBC-BT", "布吉街道": "ICBC-BT",
                "南湾街道": "ICBC-BT", "平湖街道": "ICBC-HG", "横岗街道": "ICBC-HG"},
}

# metric -> (campaign-wide, {bank code: value}); amounts in 万元 here, stored in fen
TARGETS = {
    "firms_reached": (220, {"SZRCB": 130, "ICBC-SZ": 90}),
    "events_held": (12, {"SZRCB": 7, "ICBC-SZ": 5}),
    "firm_attendances": (300, {"SZRCB": 180, "ICBC-SZ": 120}),
    "credit_firms": (80, {"SZRCB": 48, "ICBC-SZ": 32}),
    "credit_amount_wan": (60000, {"SZRCB": 35000, "ICBC-SZ": 25000}),
    "ip_pledge_deals": (41, {"SZRCB": 26, "ICBC-SZ": 15}),
    "ip_pledge_amount_wan": (11700, {"SZRCB": 7000, "ICBC-SZ": 4700}),
}
AMOUNT_METRICS = {"credit_amount_wan", "ip_pledge_amount_wan"}
BRANCH_TARGETS = {  # firms_reached and credit_firms per branch
    "SZRCB-LG": (40, 15), "SZRCB-BT": (35, 13), "SZRCB-BJ": (30, 11), "SZRCB-PH": (25, 9),
    "ICBC-LG": (35, 12), "ICBC-BT": (30, 11), "ICBC-HG": (25, 9),
}

# ----------------------------------------------------------------------------------------------------------
# Word lists
# ----------------------------------------------------------------------------------------------------------

INDUSTRY_PLAN = [("ai", 34), ("low_altitude", 26), ("smart_driving", 24), ("electronic_info", 44),
                 ("biomedicine", 28), ("low_carbon", 26), ("other", 18)]

BRAND_CHARS = "".join(dict.fromkeys("华创智鑫瑞星云鹏峰天宇博睿远恒达晟安信德航凌驰曜拓领联新源海景和正汇嘉泰卓越芯光微迈捷"
                                     "力诺铭泓锐弘盛佳启明思科奥讯乐"))

DOMAIN_WORDS = {
    "ai": ["智能", "人工智能", "视觉", "机器人", "智算", "数据", "语音", "算法"],
    "low_altitude": ["无人机", "低空", "航空", "飞行器", "通航", "无人系统"],
    "smart_driving": ["自动驾驶", "智能驾驶", "智行", "车联网", "激光雷达", "汽车电子"],
    "electronic_info": ["芯片", "半导体", "微电子", "光电", "通信", "电子", "传感", "集成电路"],
    "biomedicine": ["生物", "医疗器械", "基因", "医疗", "生命科学", "生物医药"],
    "low_carbon": ["新能源", "储能", "氢能", "光伏", "环保", "电池", "节能"],
    "other": ["软件", "信息", "精密", "新材料", "检测", "智造"],
}
SUFFIXES = ["科技有限公司"] * 6 + ["技术有限公司"] * 3 + ["有限公司"]

PRODUCT_DESC = {
    "ai": ["工业视觉检测设备", "大模型行业应用", "服务机器人", "智能安防算法", "智能语音交互模组"],
    "low_altitude": ["工业级无人机", "eVTOL 飞行器关键部件", "无人机巡检服务", "低空物流配送系统", "飞控系统"],
    "smart_driving": ["车载激光雷达", "自动驾驶域控制器", "毫米波雷达", "智能座舱软件", "高精度定位模组"],
    "electronic_info": ["功率半导体器件", "5G 通信模组", "MEMS 传感器", "显示驱动芯片", "高速光模块"],
    "biomedicine": ["体外诊断试剂", "高值医用耗材", "创新药研发外包服务", "基因检测服务", "康复医疗设备"],
    "low_carbon": ["储能电池系统", "光伏逆变器", "氢燃料电池电堆", "建筑节能改造", "动力电池回收"],
    "other": ["精密模具", "工业软件", "检测认证服务", "新型功能材料", "智能制造装备"],
}

PATENT_TITLES = {
    "ai": ["一种基于深度学习的缺陷检测方法及系统", "一种多模态语音交互方法、装置及存储介质",
           "一种服务机器人的自主导航方法", "一种视频目标跟踪方法及电子设备"],
    "low_altitude": ["一种多旋翼无人机的折叠机臂结构", "一种无人机自主避障方法及系统",
                     "一种电动垂直起降飞行器的倾转机构", "一种无人机电池快速更换装置"],
    "smart_driving": ["一种激光雷达点云去噪方法", "一种自动驾驶车辆的路径规划方法及装置",
                      "一种车载毫米波雷达天线结构", "一种驾驶员疲劳状态识别方法"],
    "electronic_info": ["一种碳化硅功率器件及其制备方法", "一种低功耗蓝牙通信模组",
                        "一种 MEMS 压力传感器的封装结构", "一种高速光模块的散热结构"],
    "biomedicine": ["一种核酸快速检测试剂盒及其制备方法", "一种可降解血管支架",
                    "一种单克隆抗体的纯化方法", "一种康复训练外骨骼装置"],
    "low_carbon": ["一种储能电池包的热管理系统", "一种光伏逆变器的最大功率点跟踪方法",
                   "一种质子交换膜燃料电池双极板", "一种废旧锂电池正极材料回收方法"],
    "other": ["一种精密注塑模具的冷却结构", "一种工业设备远程运维方法及系统",
              "一种高导热复合材料及其制备方法", "一种自动化检测治具"],
}

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许邓冯韩曹曾彭萧蔡潘田董袁于余叶蒋杜苏魏程吕丁"
            "沈任姚卢钟姜崔谭廖范汪陆金石戴贾韦夏邱方侯邹熊孟秦白江薛尹段雷黎史龙陶贺顾毛郝龚邵万钱严赖覃洪武莫孔")
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
         "秀英", "霞", "平", "刚", "文", "辉", "建华", "晓东", "志强", "海燕", "宇", "浩", "婷", "鹏", "昊",
         "思远", "嘉豪", "子涵", "欣怡", "俊杰", "雨桐", "晨", "博文", "立新", "国栋", "振华", "晓峰", "丽华",
         "春燕", "小龙", "家豪", "志明", "文静", "永红", "建军", "伟民", "梓豪", "佳琪", "锦程", "慧敏"]
TITLES = [["总经理", "董事长", "创始人兼 CEO", "执行董事"], ["财务总监", "财务经理", "CFO"],
          ["副总经理", "董事会秘书", "融资经理", "行政总监"]]
MOBILE_PREFIXES = ["134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "182",
                   "183", "187", "188", "130", "131", "132", "155", "156", "185", "186", "133", "153", "177",
                   "180", "181", "189", "199", "166", "173"]

STREET_WEIGHTS = [("坂田街道", 22), ("平湖街道", 14), ("布吉街道", 12), ("龙城街道", 12), ("宝龙街道", 12),
                  ("园山街道", 6), ("横岗街道", 7), ("坪地街道", 5), ("南湾街道", 5), ("吉华街道", 5),
                  ("龙岗街道", 6)]
SECTION_WEIGHTS = {
    "ai": [("I", 60), ("C", 25), ("M", 15)],
    "low_altitude": [("C", 80), ("M", 20)],
    "smart_driving": [("C", 55), ("I", 35), ("M", 10)],
    "electronic_info": [("C", 85), ("I", 15)],
    "biomedicine": [("C", 60), ("M", 40)],
    "low_carbon": [("C", 70), ("D", 15), ("M", 15)],
    "other": [("C", 40), ("I", 25), ("M", 20), ("F", 10), ("L", 5)],
}
# size -> (weight, headcount range, capital range 万元, founding years, high-tech probability)
SIZES = {
    SizeClass.MICRO: (25, (5, 19), (50, 500), (2018, 2024), 0.25),
    SizeClass.SMALL: (45, (20, 99), (100, 2000), (2012, 2023), 0.55),
    SizeClass.MEDIUM: (24, (100, 299), (1000, 8000), (2006, 2020), 0.8),
    SizeClass.LARGE: (6, (300, 2000), (5000, 50000), (2000, 2015), 0.9),
}
#: issue dates of high-tech certificate batches (Shenzhen issues them in the autumn and winter)
HIGH_TECH_BATCHES = [date(2023, 12, 12), date(2024, 11, 26), date(2024, 12, 24), date(2025, 12, 4),
                     date(2025, 11, 20)]
HIGH_TECH_EXPIRED = [date(2022, 12, 14), date(2023, 11, 15)]  # expired 2025-12-13 / 2026-11-14

PURPOSES = ["补充流动资金", "研发投入", "购置生产设备", "扩建产线", "支付原材料采购款", "新产品量产备货"]
GUARANTEES = ["信用", "担保公司担保", "房产抵押", "设备抵押", "应收账款质押"]
VALUERS = ["深圳市知衡资产评估有限公司", "广东中诚知识产权评估有限公司", "深圳市鹏元资产评估有限公司"]

NEXT_STEPS = {
    "strong": ["收集授信申请材料清单", "安排专利价值评估", "预约实地尽职调查", "准备授信审批材料"],
    "some": ["发送产品方案及材料清单", "邀请参加银企对接会", "两周后电话回访", "介绍风险补偿及贴息政策细则"],
    "wait": ["一个月后电话回访", "邀请参加政策宣讲会"],
    "refused": ["季度例行回访"],
    "unreachable": ["通过街道办核实企业联系方式"],
}
EXTRA_TASKS = ["补充企业近两年财务报表", "催收专利评估报告", "确认质押登记材料", "回访企业融资需求",
               "邀请企业参加对接会", "协助企业申报贴息", "核实企业实际经营地址", "跟进授信审批进度"]
DECLINE_REASONS = [("insufficient_cashflow", 4), ("high_leverage", 3), ("credit_record", 2), ("ip_value_low", 3),
                   ("ip_ownership", 1), ("collateral", 2), ("policy", 1), ("materials", 1)]
ABSENCE = ["临时出差", "公司有紧急会议", "", "", "身体不适", "改派同事参会未登记"]

# (title, kind, day or days-from-today, start, end, venue, organiser codes, industries, capacity, status)
EVENTS = [
    ("「知产融」专项行动启动会暨科技金融政策宣讲会", EventKind.POLICY, date(2026, 3, 18), (14, 30), (17, 0),
     "龙岗区文化中心报告厅", ["LG-KCJ", "SZRCB", "ICBC-SZ"], [], 200, EventStatus.HELD),
    ("天安云谷人工智能企业银企对接会", EventKind.PARK, date(2026, 4, 9), (14, 30), (17, 0),
     "天安云谷产业服务中心路演厅", ["TAYG", "SZRCB-BT", "LG-KCJ"], ["ai", "electronic_info"], 80, EventStatus.HELD),
    ("低空经济产业银企对接专场", EventKind.INDUSTRY, date(2026, 4, 23), (9, 30), (12, 0),
     "宝龙科技城会议中心", ["LG-KCJ", "ICBC-LG"], ["low_altitude"], 60, EventStatus.HELD),
    ("深圳农商银行知识产权质押融资专场", EventKind.BANK, date(2026, 5, 14), (14, 30), (16, 30),
     "深圳农商银行龙岗支行三楼会议室", ["SZRCB", "SZRCB-LG"], [], 50, EventStatus.HELD),
    ("生物医药企业线上融资对接会", EventKind.ONLINE, date(2026, 5, 28), (15, 0), (16, 30),
     "线上（视频会议）", ["ICBC-SZ", "LG-KCJ"], ["biomedicine"], 100, EventStatus.HELD),
    ("坂田街道科技企业惠企政策宣讲会", EventKind.POLICY, date(2026, 6, 17), (9, 30), (11, 30),
     "坂田街道办事处三楼会议室", ["LG-BT-JD", "LG-KCJ", "SZRCB-BT"], ["ai", "electronic_info"], 80,
     EventStatus.HELD),
    ("智能驾驶产业链银企对接会", EventKind.INDUSTRY, date(2026, 7, 9), (14, 30), (17, 0),
     "龙岗区智能网联汽车产业服务中心", ["ICBC-SZ", "LG-KCJ"], ["smart_driving", "electronic_info"], 60,
     EventStatus.HELD),
    ("工商银行跨境知识产权质押融资专场", EventKind.BANK, date(2026, 7, 23), (14, 30), (16, 30),
     "工商银行深圳龙岗支行二楼会议室", ["ICBC-SZ", "ICBC-LG"], [], 40, EventStatus.HELD),
    ("国际低碳城低碳产业银企对接会", EventKind.PARK, date(2026, 8, 20), (14, 30), (17, 0),
     "深圳国际低碳城会展中心", ["LG-DTC", "SZRCB", "LG-KCJ"], ["low_carbon"], 60, EventStatus.HELD),
    ("平湖街道电子信息产业银企对接会", EventKind.INDUSTRY, date(2026, 10, 22), (14, 30), (17, 0),
     "平湖街道办事处会议室", ["LG-PH-JD", "SZRCB-PH", "ICBC-HG", "LG-KCJ"], ["electronic_info"], 80,
     EventStatus.HELD),
    ("布吉街道银企对接会", EventKind.INDUSTRY, date(2026, 11, 12), (14, 30), (16, 30),
     "布吉街道办事处会议室", ["SZRCB-BJ", "LG-KCJ"], [], 50, EventStatus.CANCELLED),
    ("人工智能与低空经济企业融资路演", EventKind.PARK, 8, (14, 0), (17, 30),
     "天安云谷产业服务中心路演厅", ["TAYG", "LG-KCJ", "SZRCB", "ICBC-SZ"], ["ai", "low_altitude"], 120,
     EventStatus.PLANNED),
    ("2027 年科技金融政策宣讲暨银企签约会", EventKind.POLICY, 22, (9, 30), (12, 0),
     "龙岗区文化中心报告厅", ["LG-KCJ", "SZRCB", "ICBC-SZ"], [], 150, EventStatus.PLANNED),
]

# the stage each application reaches, with how many applications end there (120 in all)
STAGE_PLAN = [(Stage.ACCEPTED, 8), (Stage.UNDER_REVIEW, 10), (Stage.APPROVED, 12), (Stage.CONTRACTED, 10),
              (Stage.PLEDGE_REGISTERED, 8), (Stage.DISBURSED, 40), (Stage.REPAID, 8), (Stage.DECLINED, 14),
              (Stage.WITHDRAWN, 10)]
# the window of acceptance dates for each final stage, so that it is reached by the anchor day
ACCEPT_WINDOW = {
    Stage.ACCEPTED: (date(2026, 11, 17), ANCHOR),
    Stage.UNDER_REVIEW: (date(2026, 11, 11), date(2026, 11, 18)),
    Stage.APPROVED: (date(2026, 10, 20), date(2026, 11, 10)),
    Stage.CONTRACTED: (date(2026, 9, 25), date(2026, 11, 2)),
    Stage.PLEDGE_REGISTERED: (date(2026, 9, 15), date(2026, 10, 26)),
    Stage.DISBURSED: (date(2026, 3, 16), date(2026, 10, 20)),
    Stage.REPAID: (date(2026, 3, 9), date(2026, 4, 30)),
    Stage.DECLINED: (date(2026, 3, 16), date(2026, 11, 6)),
    Stage.WITHDRAWN: (date(2026, 3, 16), date(2026, 11, 6)),
}
PRODUCT_WEIGHTS = [("working_capital", 40), ("rnd_loan", 25), ("equipment_renewal", 25), ("other", 10)]


# ----------------------------------------------------------------------------------------------------------
# Working state
# ----------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Person:
    name: str
    title: str
    mobile: str
    email: str = ""


@dataclass(eq=False)
class FirmPlan:
    firm: Firm
    street: str
    people: list[Person]
    brand: str
    product: str  #: what the firm makes, for the visit notes


@dataclass(eq=False)
class AccountPlan:
    bank: Organisation
    fp: FirmPlan
    owner: User
    first_contact: date
    profile: str  #: the willingness at the latest visit
    app_plan: Optional["AppPlan"] = None
    contacts: list[Contact] = field(default_factory=list)
    account: Optional[FirmAccount] = None
    visits: list[Visit] = field(default_factory=list)


@dataclass(eq=False)
class AppPlan:
    stage: Stage  #: the stage it has reached on the anchor day
    product: str
    accepted_on: date
    acct: Optional[AccountPlan] = None
    first_loan: bool = False
    requested_fen: int = 0
    requested_term: int = 12
    #: random draws fixed before the timeline is fitted before the anchor day
    draws: dict = field(default_factory=dict)
    steps: list[tuple[Optional[Stage], Stage, date]] = field(default_factory=list)
    decided_on: Optional[date] = None
    app: Optional[CreditApplication] = None


class _Demo:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        #: a separate stream for what is dated relative to today, so the rest never depends on the day
        self.rng_now = random.Random(f"{seed}/today")
        self.today = today_local()
        self.overrides = {d: bool(w) for d, w in db.session.execute(
            sa.select(HolidayOverride.day, HolidayOverride.is_workday)).all()}
        self.orgs: dict[str, Organisation] = {}
        self.users: dict[str, User] = {}
        self.used_mobiles: set[str] = set()
        self.firm_plans: list[FirmPlan] = []
        self.accounts: list[AccountPlan] = []
        self.apps: list[AppPlan] = []
        self.events: list[Event] = []
        self.held_events: list[Event] = []

    # --- small helpers --------------------------------------------------------------------------------

    def weighted(self, pairs, rng=None):
        rng = rng or self.rng
        values, weights = zip(*pairs)
        return rng.choices(values, weights=weights, k=1)[0]

    def is_workday(self, d: date) -> bool:
        return workdays.is_workday(d, self.overrides)[0]

    def workday_on_or_after(self, d: date) -> date:
        while not self.is_workday(d):
            d += timedelta(days=1)
        return d

    def workday_on_or_before(self, d: date) -> date:
        while not self.is_workday(d):
            d -= timedelta(days=1)
        return d

    def add_wd(self, d: date, n: int) -> date:
        return workdays.add_workdays(d, n, self.overrides).day

    def rand_day(self, lo: date, hi: date, rng=None) -> date:
        rng = rng or self.rng
        return lo + timedelta(days=rng.randint(0, max(0, (hi - lo).days)))

    def rand_workday(self, lo: date, hi: date) -> date:
        d = self.workday_on_or_after(self.rand_day(lo, hi))
        return d if d <= hi else self.workday_on_or_before(hi)

    def mobile(self) -> str:
        while True:
            m = self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randint(0, 99_999_999):08d}"
            if m not in self.used_mobiles:
                self.used_mobiles.add(m)
                return m

    def person_name(self) -> str:
        return self.rng.choice(SURNAMES) + self.rng.choice(GIVEN)

    def branch_id(self, user: User) -> Optional[int]:
        return user.org_id if user.org.parent_id is not None else None

    # --- steps ----------------------------------------------------------------------------------------

    def build_orgs_and_users(self):
        for code, name, short, kind, parent in ORGS:
            org = Organisation(code=code, name=name, short_name=short, kind=kind,
                               parent=self.orgs[parent] if parent else None)
            self.orgs[code] = org
        db.session.add_all(self.orgs.values())
        db.session.flush()
        self.banks = [self.orgs["SZRCB"], self.orgs["ICBC-SZ"]]
        pw_hash = hash_password(DEMO_PASSWORD)  # once: the production method is slow on purpose
        for username, name, role, org_code in USERS:
            org = self.orgs[org_code]
            bank = org.bank if role in (Role.RM, Role.BANK_MANAGER) else None
            self.users[username] = User(username=username, name=name, role=role, org=org,
                                        bank_id=bank.id if bank else None, password_hash=pw_hash)
        db.session.add_all(self.users.values())
        db.session.flush()
        self.rms = {b.code: [u for u in self.users.values() if u.role == Role.RM and u.bank_id == b.id]
                    for b in self.banks}
        self.managers = {b.code: next(u for u in self.users.values()
                                      if u.role == Role.BANK_MANAGER and u.bank_id == b.id) for b in self.banks}
        self.bureau_users = [u for u in self.users.values() if u.role == Role.BUREAU]
        self.admin = self.users["sysadmin"]

    def build_campaign(self):
        industries = list(db.session.scalars(sa.select(Industry).where(Industry.is_priority.is_(True))
                                             .order_by(Industry.sort_order)))
        self.campaign = Campaign(
            code=CAMPAIGN_CODE, name="「知产融」科技金融专项行动（龙岗）", district="龙岗区",
            start_on=CAMPAIGN_START, end_on=CAMPAIGN_END,
            description="深圳农商银行、工商银行深圳分行与龙岗区科技创新局联合开展的科技企业走访、银企对接与"
                        "知识产权质押融资专项行动，聚焦六大重点产业。",
            organisations=list(self.orgs.values()), industries=industries,
        )
        db.session.add(self.campaign)
        db.session.flush()
        targets = []
        for metric, (total, per_bank) in TARGETS.items():
            conv = wan if metric in AMOUNT_METRICS else int
            targets.append(Target(campaign_id=self.campaign.id, org_id=None, metric=metric, value=conv(total),
                                  set_by_id=self.admin.id))
            for bank_code, value in per_bank.items():
                targets.append(Target(campaign_id=self.campaign.id, org_id=self.orgs[bank_code].id, metric=metric,
                                      value=conv(value), set_by_id=self.managers[bank_code].id))
        for branch_code, (reached, credit) in BRANCH_TARGETS.items():
            branch = self.orgs[branch_code]
            mgr = self.managers[branch.parent.code]
            targets.append(Target(campaign_id=self.campaign.id, org_id=branch.id, metric="firms_reached",
                                  value=reached, set_by_id=mgr.id))
            targets.append(Target(campaign_id=self.campaign.id, org_id=branch.id, metric="credit_firms",
                                  value=credit, set_by_id=mgr.id))
        db.session.add_all(targets)

    def credit_code(self, founded: date, used: set[str]) -> str:
        rng = self.rng
        while True:
            if founded.year >= 2016:
                body8 = "MA5" + "".join(rng.choice(CREDIT_CODE_CHARSET) for _ in range(5))
            else:
                body8 = "".join(rng.choice(CREDIT_CODE_CHARSET[:10] if i < 2 else CREDIT_CODE_CHARSET)
                                for i in range(8))
            # the 9th character is the organisation-code check (GB 11714), as on real codes
            first17 = next(c for c in ("91440300" + body8 + ch for ch in "0123456789X")
                           if credit_code_org_check_ok(c + "0"))
            code = first17 + credit_code_check_char(first17)
            if code not in used:
                used.add(code)
                return code

    def build_firms(self):
        rng = self.rng
        streets = {s.name: s for s in db.session.scalars(sa.select(Street).where(Street.area_code == "longgang"))}
        street_weights = [(n, w) for n, w in STREET_WEIGHTS if n in streets] or [(None, 1)]
        names: set[str] = set()
        codes: set[str] = set()
        cert_nos: set[str] = set()
        industries = [code for code, n in INDUSTRY_PLAN for _ in range(n)]
        rng.shuffle(industries)
        for i, industry in enumerate(industries):
            while True:
                brand = "".join(rng.sample(BRAND_CHARS, 2))
                word = rng.choice(DOMAIN_WORDS[industry])
                size = self.weighted([(s, v[0]) for s, v in SIZES.items()])
                suffix = "股份有限公司" if size in (SizeClass.MEDIUM, SizeClass.LARGE) and rng.random() < 0.3 \
                    else rng.choice(SUFFIXES)
                if word.endswith("科技") or (suffix == "有限公司" and industry not in ("biomedicine", "other")):
                    suffix = "科技有限公司"
                name = ("深圳市" if rng.random() < 0.8 else "深圳") + brand + word + suffix
                if name not in names:
                    names.add(name)
                    break
            _w, heads, capital, years, p_high_tech = SIZES[size]
            founded = date(rng.randint(*years), rng.randint(1, 12), rng.randint(1, 28))
            if industry == "low_carbon" and rng.random() < 0.4:
                street = "坪地街道"
            elif industry == "ai" and rng.random() < 0.3:
                street = "坂田街道"
            else:
                street = self.weighted(street_weights)
            if street not in streets:
                street = None
            cap_wan = rng.randint(capital[0] // 10, capital[1] // 10) * 10
            high_tech_issued = None
            cert_no = None
            if rng.random() < p_high_tech:
                kind = rng.random()
                if kind < 0.09:  # expiring within 90 days of today (the home page's reminder)
                    high_tech_issued = years_later(self.today + timedelta(days=self.rng_now.randint(10, 85)), -3)
                elif kind < 0.18:
                    high_tech_issued = rng.choice(HIGH_TECH_EXPIRED)
                else:
                    high_tech_issued = rng.choice(HIGH_TECH_BATCHES)
                while cert_no is None or cert_no in cert_nos:
                    cert_no = f"GR{high_tech_issued.year}442{rng.randint(0, 99999):05d}"
                cert_nos.add(cert_no)
            big = size in (SizeClass.MEDIUM, SizeClass.LARGE)
            inv_hi = {SizeClass.MICRO: 4, SizeClass.SMALL: 15, SizeClass.MEDIUM: 40, SizeClass.LARGE: 160}[size]
            firm = Firm(
                name=name, credit_code=self.credit_code(founded, codes), area_code="longgang",
                street_id=streets[street].id if street else None, industry_code=industry,
                section_code=self.weighted(SECTION_WEIGHTS[industry]), size_class=size, founded_on=founded,
                registered_capital_fen=wan(cap_wan), headcount=rng.randint(*heads),
                high_tech_cert_no=cert_no, high_tech_issued_on=high_tech_issued,
                sme_tier=self.weighted([(SmeTier.NONE, 45), (SmeTier.INNOVATIVE, 25), (SmeTier.SPECIALISED, 22),
                                        (SmeTier.LITTLE_GIANT, 8 if big else 2)]),
                is_tech_sme=rng.random() < (0.3 if big else 0.65),
                invention_patents=rng.randint(0 if size == SizeClass.MICRO else 1, inv_hi),
                utility_models=rng.randint(0, inv_hi * 2),
                design_patents=rng.randint(0, 10) if industry in ("ai", "low_altitude", "biomedicine", "other") else
                rng.randint(0, 4),
                software_copyrights=rng.randint(3, 60) if industry in ("ai", "smart_driving", "other") else
                rng.randint(0, 12),
                is_cross_border=industry in ("ai", "electronic_info", "biomedicine") and rng.random() < 0.1,
            )
            n_people = rng.choice([1, 2, 2, 3])
            people = []
            for k in range(n_people):
                pname = self.person_name()
                while any(p.name == pname for p in people):
                    pname = self.person_name()
                email = f"{['ceo', 'cfo', 'office'][k]}.{i + 1:03d}@example.com" if rng.random() < 0.45 else ""
                people.append(Person(pname, rng.choice(TITLES[k]), self.mobile(), email))
            self.firm_plans.append(FirmPlan(firm, street or "", people, brand, rng.choice(PRODUCT_DESC[industry])))
        # flushed with the accounts, once the firms' last details are known

    def build_accounts(self):
        """Which banks work with which firms: ~172 firms visited (some by both banks), 18 reached only at
        events, 10 on the bureau's list but not reached yet."""
        rng = self.rng
        order = list(self.firm_plans)
        rng.shuffle(order)
        self.visited_firms = order[:172]
        self.event_only_firms = order[172:190]
        self.untouched_firms = order[190:]
        for fp in self.visited_firms:
            first = self.banks[0] if rng.random() < 0.58 else self.banks[1]
            banks = [first]
            if rng.random() < 0.17:
                banks.append(self.banks[1] if first is self.banks[0] else self.banks[0])
            for bank in banks:
                branch_code = BRANCH_FOR_STREET[bank.code].get(fp.street) or rng.choice(
                    [o.code for o in bank.children])
                rms = [u for u in self.rms[bank.code] if u.org.code == branch_code] or self.rms[bank.code]
                owner = rng.choice(rms)
                first_contact = self.rand_workday(FIRST_VISIT_DAY, date(2026, 11, 10))
                profile = self.weighted([("strong", 34), ("some", 32), ("wait", 20), ("refused", 7),
                                         ("unreachable", 7)])
                self.accounts.append(AccountPlan(bank, fp, owner, first_contact, profile))
            fp.firm.created_by_id = self.accounts[-len(banks)].owner.id

    def plan_applications(self):
        """120 applications, each with the stage it has reached, on accounts willing to borrow."""
        rng = self.rng
        stages = [s for s, n in STAGE_PLAN for _ in range(n)]
        rng.shuffle(stages)
        first_loan_firms: set[str] = set()
        repaid_ip = 3  # some repaid IP-pledge loans, so released pledges exist too
        for stage in stages:
            if stage == Stage.REPAID and repaid_ip:
                repaid_ip -= 1
                product = "ip_pledge"
            elif stage == Stage.PLEDGE_REGISTERED or rng.random() < 0.36:
                product = "ip_pledge"
            else:
                product = self.weighted(PRODUCT_WEIGHTS)
            lo, hi = ACCEPT_WINDOW[stage]
            plan = AppPlan(stage, product, self.rand_workday(lo, hi))
            candidates = [a for a in self.accounts if a.app_plan is None and a.profile in ("strong", "some")]
            if product == "ip_pledge":  # IP pledges go to high-tech firms first
                candidates = [a for a in candidates if a.fp.firm.high_tech_issued_on is not None] or candidates
            if not candidates:
                candidates = [a for a in self.accounts if a.app_plan is None]
                if not candidates:
                    break
            acct = rng.choice(candidates)
            if acct.profile not in ("strong", "some"):
                acct.profile = "some"
            plan.acct = acct
            acct.app_plan = plan
            firm = acct.fp.firm
            if product == "ip_pledge" and firm.invention_patents + firm.utility_models == 0:
                firm.invention_patents = rng.randint(2, 6)
            plan.first_loan = firm.credit_code not in first_loan_firms and rng.random() < 0.3
            if plan.first_loan:
                first_loan_firms.add(firm.credit_code)
            ip = product == "ip_pledge"
            r = rng.random()
            if ip:  # the reported case: 41 deals for 1.17亿, about 300万 each
                req_wan = rng.randint(2, 12) * 50 if r < 0.85 else rng.randint(7, 15) * 100
            else:
                req_wan = rng.randint(2, 20) * 50 if r < 0.75 else (
                    rng.randint(11, 30) * 100 if r < 0.95 else rng.randint(7, 12) * 500)
            plan.requested_fen = wan(req_wan)
            if stage == Stage.REPAID and rng.random() < 0.6:
                plan.requested_term = 6
            else:
                plan.requested_term = rng.choice([24, 36, 60] if product == "equipment_renewal" else [12, 12, 24, 36])
            tier = workdays.sla_tier_days(plan.requested_fen)
            plan.draws = dict(
                decide_n=rng.randint(1, tier) if rng.random() < 0.78 else rng.randint(tier + 1, tier + 4),
                review_n=rng.randint(0, 1), gaps=[rng.randint(3, 10), rng.randint(3, 10), rng.randint(1, 7)],
                withdraw_n=rng.randint(1, 6), approved_pct=rng.choice([100, 100, 100, 100, 90, 80, 70, 60]),
                rate=rng.randint(300, 380) if ip else rng.randint(320, 420),
                discount=rng.randint(10, 20) if ip else rng.randint(0, 15), repay_frac=rng.random(),
                lead_days=rng.randint(10, 40),
            )
            self.fit_timeline(plan)
            # the bank met the firm before the application
            latest_first = self.workday_on_or_before(plan.accepted_on - timedelta(days=plan.draws["lead_days"]))
            if latest_first < FIRST_VISIT_DAY:
                latest_first = self.rand_workday(FIRST_VISIT_DAY, plan.accepted_on - timedelta(days=5))
            acct.first_contact = min(acct.first_contact, latest_first)
            self.apps.append(plan)

    def fit_timeline(self, plan: AppPlan):
        """Compute the stage dates; move the acceptance back until the last one is on or before the anchor."""
        for _ in range(40):
            self.compute_steps(plan)
            overflow = (plan.steps[-1][2] - ANCHOR).days
            if overflow <= 0:
                break
            plan.accepted_on = self.workday_on_or_before(plan.accepted_on - timedelta(days=overflow))
        plan.decided_on = next((d for _f, t, d in plan.steps if t in (Stage.APPROVED, Stage.DECLINED)), None)

    def compute_steps(self, plan: AppPlan):
        dr = plan.draws
        ip = plan.product == "ip_pledge"
        acc = plan.accepted_on
        target = plan.stage
        steps: list[tuple[Optional[Stage], Stage, date]] = [(None, Stage.ACCEPTED, acc)]
        plan.steps = steps
        if target == Stage.ACCEPTED:
            return
        if target == Stage.WITHDRAWN and dr["withdraw_n"] <= 1:  # withdrawn before the review started
            steps.append((Stage.ACCEPTED, Stage.WITHDRAWN, self.add_wd(acc, dr["withdraw_n"])))
            return
        review = self.add_wd(acc, dr["review_n"])
        steps.append((Stage.ACCEPTED, Stage.UNDER_REVIEW, review))
        if target == Stage.UNDER_REVIEW:
            return
        if target == Stage.WITHDRAWN:
            steps.append((Stage.UNDER_REVIEW, Stage.WITHDRAWN, max(review, self.add_wd(acc, dr["withdraw_n"]))))
            return
        decided = max(review, self.add_wd(acc, dr["decide_n"]))
        if target == Stage.DECLINED:
            steps.append((Stage.UNDER_REVIEW, Stage.DECLINED, decided))
            return
        steps.append((Stage.UNDER_REVIEW, Stage.APPROVED, decided))
        if target == Stage.APPROVED:
            return
        # the IP-pledge product registers the pledge before or after disbursement, as its code list says
        if not ip:
            order = [Stage.CONTRACTED, Stage.DISBURSED, Stage.REPAID]
        elif self.pledge_first:
            order = [Stage.CONTRACTED, Stage.PLEDGE_REGISTERED, Stage.DISBURSED, Stage.REPAID]
        else:
            order = [Stage.CONTRACTED, Stage.DISBURSED, Stage.PLEDGE_REGISTERED, Stage.REPAID]
        prev_stage, prev_day = Stage.APPROVED, decided
        for k, stage in enumerate(order):
            if stage == Stage.REPAID:
                matures = add_months(prev_day, plan.requested_term)
                if matures <= ANCHOR:
                    day = matures
                else:  # repaid early
                    lo = prev_day + timedelta(days=90)
                    day = lo + timedelta(days=int(max(0, (ANCHOR - lo).days) * dr["repay_frac"]))
            else:
                day = self.workday_on_or_after(prev_day + timedelta(days=dr["gaps"][min(k, 2)]))
            steps.append((prev_stage, stage, day))
            prev_stage, prev_day = stage, day
            if stage == target:
                break

    def build_contacts_and_accounts(self):
        rng = self.rng
        db.session.add_all(fp.firm for fp in self.firm_plans)
        db.session.flush()
        contacts = []
        for a in self.accounts:
            people = a.fp.people
            # the bank records the person it deals with: usually finance, sometimes the boss too
            chosen = [people[1] if len(people) > 1 else people[0]]
            if len(people) > 1 and rng.random() < 0.5:
                chosen.append(people[0])
            for p in chosen:
                c = Contact(firm_id=a.fp.firm.id, bank_id=a.bank.id, name=p.name, title=p.title, mobile=p.mobile,
                            email=p.email, created_by_id=a.owner.id)
                a.contacts.append(c)
                contacts.append(c)
        db.session.add_all(contacts)
        for a in self.accounts:
            a.account = FirmAccount(bank_id=a.bank.id, firm_id=a.fp.firm.id, branch_id=self.branch_id(a.owner),
                                    owner_id=a.owner.id)
        db.session.add_all(a.account for a in self.accounts)
        db.session.flush()

    def build_events(self):
        rng = self.rng
        # codes continue the EV-<year>-NNNN sequence that new events use
        taken = db.session.scalars(sa.select(Event.code).where(Event.code.startswith("EV-2026-"))).all()
        first = max([int(c[8:]) for c in taken if c[8:].isdigit()], default=0) + 1
        for i, (title, kind, when, start, end, venue, org_codes, inds, capacity, status) in enumerate(EVENTS, first):
            if isinstance(when, int):  # planned: dated relative to today so that it is always upcoming
                held_on = self.workday_on_or_after(self.today + timedelta(days=when))
            else:
                held_on = when
            organisers = [self.orgs[c] for c in org_codes]
            staff: list[User] = []
            for org in organisers:
                if org.kind == OrgKind.BANK:
                    bank = org.bank
                    if org.parent_id is None:
                        staff.append(self.managers[bank.code])
                        pool = self.rms[bank.code]
                    else:
                        pool = [u for u in self.rms[bank.code] if u.org_id == org.id] or self.rms[bank.code]
                    staff += rng.sample(pool, min(len(pool), rng.randint(1, 2)))
                elif org.kind == OrgKind.BUREAU:
                    staff += self.bureau_users[: rng.randint(1, 2)]
            staff = list(dict.fromkeys(staff))
            ev = Event(
                code=f"EV-2026-{i:04d}", campaign_id=self.campaign.id, title=title, kind=kind, held_on=held_on,
                start_time=time(*start), end_time=time(*end), venue=venue, capacity=capacity, status=status,
                description=self.event_description(kind, inds, status),
                created_by_id=staff[0].id if staff else None,
                public_token=new_public_token() if status == EventStatus.PLANNED else None,
                organisers=organisers, staff=staff, industries=[self.industries[c] for c in inds],
                created_at=local_ts(min(held_on, ANCHOR) - timedelta(days=30), 10),
                modified_at=local_ts(min(held_on, ANCHOR), 18),
            )
            if status == EventStatus.HELD:
                if kind != EventKind.POLICY:
                    ev.deals_signed = rng.randint(0, 4)
                    ev.deals_signed_fen = sum(wan(rng.randint(10, 150) * 10) for _ in range(ev.deals_signed))
                ev.intentions = rng.randint(3, 12)
                ev.intentions_fen = sum(wan(rng.randint(10, 200) * 10) for _ in range(ev.intentions))
                self.held_events.append(ev)
            self.events.append(ev)
        db.session.add_all(self.events)
        db.session.flush()

    def event_description(self, kind, inds, status) -> str:
        names = "、".join(self.industries[c].name_zh for c in inds) or "六大重点产业"
        text = {
            EventKind.POLICY: f"解读龙岗区科技金融扶持政策（贴息、风险补偿）与「知产融」专项产品，面向{names}企业。",
            EventKind.PARK: f"园区专场：银行、区科创局与园区共同走进{names}企业，现场对接融资需求。",
            EventKind.INDUSTRY: f"行业专场：围绕{names}产业链企业的融资需求开展一对一对接。",
            EventKind.BANK: "银行专场：介绍知识产权质押贷款、研发贷等产品，现场受理授信申请。",
            EventKind.ONLINE: f"线上对接：{names}企业在线路演，银行现场答疑并预约后续走访。",
        }[kind]
        if status == EventStatus.CANCELLED:
            text += "（因场地检修取消，已电话通知报名企业，改期另行安排。）"
        return text

    def build_visits(self):
        rng = self.rng
        visits: list[Visit] = []
        for a in self.accounts:
            plan = a.app_plan
            dates = {a.first_contact}
            pre_app = None
            if plan is not None:
                pre_app = self.workday_on_or_before(plan.accepted_on - timedelta(days=rng.randint(2, 10)))
                pre_app = max(pre_app, a.first_contact)
                dates.add(pre_app)
            # some firms were first met at an event of the bank
            event_day = None
            if rng.random() < 0.15:
                latest = pre_app - timedelta(days=1) if pre_app else ANCHOR
                evs = [e for e in self.held_events if e.held_on <= latest
                       and any(o.id == a.bank.id or o.parent_id == a.bank.id for o in e.organisers)]
                if evs:
                    dates.discard(a.first_contact)
                    event_day = rng.choice(evs).held_on
                    dates.add(event_day)
            n = {"strong": rng.randint(2, 3), "some": rng.randint(1, 2), "wait": rng.randint(1, 2),
                 "refused": 1, "unreachable": rng.randint(1, 2)}[a.profile]
            if plan is not None and plan.stage in (Stage.DISBURSED, Stage.REPAID):
                n += 1  # a visit after the loan
            start = min(dates)
            for _ in range(max(0, n - len(dates))):
                dates.add(self.rand_workday(start, ANCHOR))
            ordered = sorted(dates)
            for j, day in enumerate(ordered):
                last = j == len(ordered) - 1
                post_loan = plan is not None and plan.decided_on is not None and day > plan.decided_on and \
                    plan.stage in (Stage.CONTRACTED, Stage.PLEDGE_REGISTERED, Stage.DISBURSED, Stage.REPAID)
                closed = plan is not None and plan.stage in (Stage.DECLINED, Stage.WITHDRAWN) and \
                    day > plan.steps[-1][2]
                if day == pre_app:
                    will = "strong"
                elif post_loan:  # borrowing already; may come back for a renewal
                    will = rng.choice(["strong", "some"])
                elif closed:  # after a decline or a withdrawal the firm cools down
                    will = rng.choice(["wait", "some", "refused"])
                elif last:
                    will = a.profile
                elif a.profile == "unreachable":
                    will = "unreachable"
                else:
                    will = rng.choice(["wait", "some", "some"])
                mode = "event" if day == event_day else None
                v = self.make_visit(a, day, will, mode, plan if day == pre_app else None, post_loan)
                a.visits.append(v)
                visits.append(v)
        db.session.add_all(visits)
        db.session.flush()
        for a in self.accounts:  # the account reflects the latest visit
            last = a.visits[-1]
            a.account.last_visit_on = last.visited_on
            a.account.willingness_code = last.willingness_code
            a.account.open_need_fen = last.need_amount_fen
        self.visits = visits

    def make_visit(self, a: AccountPlan, day: date, will: str, mode: Optional[str], plan: Optional[AppPlan],
                   post_loan: bool) -> Visit:
        rng = self.rng
        firm = a.fp.firm
        rm = a.owner if rng.random() < 0.9 else self.managers[a.bank.code]
        if mode is None:
            mode = "phone" if will == "unreachable" else self.weighted(
                [("on_site", 60), ("phone", 15), ("online", 12), ("firm_came", 13)])
        contact = a.contacts[0] if will != "unreachable" else None
        need_fen = term = None
        purpose = guarantee = ""
        wants_subsidy = wants_risk = False
        if will in ("strong", "some") and not post_loan:
            if plan is not None:
                need_fen, term = plan.requested_fen, plan.requested_term
            else:
                need_fen = wan(rng.choice([100, 200, 300, 500, 500, 800, 1000, 1500, 2000, 3000]))
                term = rng.choice([12, 12, 24, 36])
            purpose = rng.choice(PURPOSES)
            if (plan is not None and plan.product == "ip_pledge") or rng.random() < 0.3:
                guarantee = "知识产权质押"
            else:
                guarantee = rng.choice(GUARANTEES)
            wants_subsidy = rng.random() < 0.5
            wants_risk = rng.random() < 0.35
        companions: list[User] = []
        if mode == "on_site" and rng.random() < 0.2:
            companions.append(rng.choice(self.bureau_users))  # a joint visit with the bureau
        if mode == "on_site" and rng.random() < 0.1:
            companions.append(rng.choice([u for u in self.rms[a.bank.code] + [self.managers[a.bank.code]]
                                          if u is not rm]))
        summary = self.summary(a, will, mode, need_fen, purpose, companions, post_loan)
        if post_loan:
            next_step = rng.choice(["贷后回访，了解资金使用情况", "协助企业申报贴息"])
        else:
            next_step = rng.choice(NEXT_STEPS[will])
            if will == "refused" and rng.random() < 0.5:
                next_step = ""
        return Visit(
            bank_id=a.bank.id, branch_id=self.branch_id(rm), campaign_id=self.campaign.id, firm_id=firm.id,
            rm_id=rm.id, visited_on=day, mode_code=mode, contact_id=contact.id if contact else None,
            summary=summary, willingness_code=will, need_amount_fen=need_fen, need_term_months=term,
            need_purpose=purpose, need_guarantee=guarantee, wants_subsidy=wants_subsidy,
            wants_risk_compensation=wants_risk, next_step=next_step,
            next_step_owner_id=a.owner.id if next_step else None,
            next_step_due_on=day + timedelta(days=rng.randint(5, 20)) if next_step else None,
            created_by_id=rm.id, companions=companions,
            created_at=local_ts(day, 18, rng.randint(0, 59)), modified_at=local_ts(day, 19),
        )

    def summary(self, a, will, mode, need_fen, purpose, companions, post_loan) -> str:
        rng = self.rng
        desc = a.fp.product
        prefix = {"on_site": "实地走访：", "phone": "电话沟通：", "online": "线上会议沟通：", "event": "活动现场交流：",
                  "firm_came": "企业来访："}[mode]
        who = f"{a.contacts[0].title}{a.contacts[0].name}"
        need = f"{need_fen // FEN_PER_WAN}万元" if need_fen else ""
        if post_loan:
            text = rng.choice([
                f"贷后回访，{who}介绍贷款资金已用于{rng.choice(PURPOSES)}，{desc}订单交付正常；已提示按期付息，并协助准备贴息申报材料。",
                f"贷后回访，企业经营正常，{desc}新增订单较多；{who}咨询续贷及风险补偿政策，已作解答。",
            ])
        elif will == "strong":
            text = rng.choice([
                f"{who}介绍公司主营{desc}，订单增长较快，因{purpose}存在约{need}资金缺口，希望尽快办理授信。"
                "已讲解知产融专项产品及贴息政策，企业表示本周内准备材料。",
                f"{who}表示企业{desc}业务进入放量阶段，{purpose}需资金约{need}，拟以名下专利申请知识产权质押贷款，"
                "已现场收集营业执照、近两年财报及专利证书复印件。",
                f"企业近期获得大客户订单，{who}希望尽快落实约{need}授信用于{purpose}，对利率优惠和贴息政策较为关注。",
            ])
        elif will == "some":
            text = rng.choice([
                f"{who}介绍公司主营{desc}，经营稳定，未来半年有{purpose}计划，初步需求约{need}，"
                "对知识产权质押贷款有兴趣，需内部讨论后答复。",
                f"{who}表示{desc}业务处于研发投入期，有{purpose}的意向，金额约{need}，希望先比较各家银行方案。",
            ])
        elif will == "wait":
            text = rng.choice([
                f"{who}表示公司主营{desc}，现金流较充裕，暂无明确融资计划。已介绍知产融专项活动及贴息政策，后续保持沟通。",
                f"{who}介绍{desc}业务平稳，年内以自有资金为主，对政策性产品有一定兴趣，待年度预算确定后再议。",
            ])
        elif will == "refused":
            text = f"{who}表示股东资金充足，近期不考虑银行融资，明确拒绝。已告知如有需要可随时联系。"
        else:
            text = "多次拨打企业登记电话无人接听，工商登记地址与实际经营地址可能不符，拟通过街道核实。"
        bureau = next((u for u in companions if u.role == Role.BUREAU), None)
        if bureau is not None:
            text += f"区科创局{bureau.name}陪同走访，现场解读风险补偿和贴息政策。"
        return prefix + text

    def build_follow_ups(self):
        rng = self.rng
        follow_ups: list[FollowUp] = []
        for v in self.visits:
            if not v.next_step:
                continue
            due = v.next_step_due_on
            fu = FollowUp(bank_id=v.bank_id, firm_id=v.firm_id, visit_id=v.id, assignee_id=v.next_step_owner_id,
                          title=v.next_step, due_on=due, created_by_id=v.rm_id,
                          created_at=v.created_at, modified_at=v.created_at)
            if due <= ANCHOR:
                if rng.random() < 0.92:
                    done_day = min(ANCHOR, max(v.visited_on, due - timedelta(days=rng.randint(0, 3))))
                    fu.status = FollowUpStatus.DONE
                    fu.done_at = local_ts(done_day, 17, rng.randint(0, 59))
                    fu.outcome = rng.choice(["已完成，企业已反馈", "已电话回访，企业已提交材料",
                                             "已完成，情况记入下次走访", "已发送材料清单"])
                    fu.modified_at = fu.done_at
                else:
                    fu.status = FollowUpStatus.CANCELLED
                    fu.outcome = "企业暂无需求，取消该任务"
            follow_ups.append(fu)
        # open tasks dated relative to today: several overdue for each RM, one due today, a couple upcoming
        rn = self.rng_now
        for user in [u for b in self.banks for u in self.rms[b.code] + [self.managers[b.code]]]:
            mine = [v for v in self.visits if v.rm_id == user.id]
            accounts = [a for a in self.accounts if a.owner is user] or [
                a for a in self.accounts if a.bank.id == user.bank_id]
            n_overdue = rn.randint(3, 5) if user.role == Role.RM else 2
            offsets = [-k for k in rn.sample(range(1, 22), n_overdue)] + [0] + [rn.randint(2, 14) for _ in range(2)]
            for off in offsets:
                due = self.today + timedelta(days=off)
                earlier = sorted((v for v in mine if v.visited_on < due), key=lambda v: (v.visited_on, v.id))
                if earlier:
                    v = rn.choice(earlier[-6:])
                    firm_id, visit_id, created = v.firm_id, v.id, v.created_at
                else:
                    firm_id, visit_id = rn.choice(accounts).fp.firm.id, None
                    created = local_ts(min(due, ANCHOR) - timedelta(days=7), 9)
                follow_ups.append(FollowUp(bank_id=user.bank_id, firm_id=firm_id, visit_id=visit_id,
                                           assignee_id=user.id, title=rn.choice(EXTRA_TASKS), due_on=due,
                                           created_by_id=user.id, created_at=created, modified_at=created))
        db.session.add_all(follow_ups)
        self.follow_ups = follow_ups

    def build_registrations(self):
        rng = self.rng
        regs: list[Registration] = []
        # each firm reached only at events comes to one held event, of its industry where there is one
        forced: dict[int, list[FirmPlan]] = {id(e): [] for e in self.events}
        for fp in self.event_only_firms:
            evs = [e for e in self.held_events if fp.firm.industry_code in {i.code for i in e.industries}]
            forced[id(rng.choice(evs or self.held_events[:1]))].append(fp)
        reachable = [fp for fp in self.visited_firms + self.event_only_firms]
        event_only = set(map(id, self.event_only_firms))
        for ev in self.events:
            inds = {i.code for i in ev.industries}
            org_codes = {o.code for o in ev.organisers}
            must = forced[id(ev)]
            pool = [fp for fp in reachable if (not inds or fp.firm.industry_code in inds)
                    and id(fp) not in event_only]
            local = "坂田街道" if org_codes & {"LG-BT-JD", "TAYG"} else "平湖街道" if "LG-PH-JD" in org_codes else \
                "坪地街道" if "LG-DTC" in org_codes else None
            if local:  # street and park events draw mostly on their own neighbourhood
                pool.sort(key=lambda fp: fp.street != local)
            n_firms = min(len(pool), rng.randint(int(ev.capacity * 0.25), int(ev.capacity * 0.38)))
            head = pool[: max(10, len(pool) // 2)]
            chosen = rng.sample(head, min(len(head), n_firms * 2 // 3))
            picked = set(map(id, chosen))
            rest = [fp for fp in pool if id(fp) not in picked]
            chosen += rng.sample(rest, min(len(rest), n_firms - len(chosen)))
            chosen += must
            banks = [o.bank for o in ev.organisers if o.kind == OrgKind.BANK]
            banks = list(dict.fromkeys(banks)) or self.banks
            bank_staff = [u for u in ev.staff if u.role in (Role.RM, Role.BANK_MANAGER)]
            for fp in chosen:
                people = fp.people[:2] if len(fp.people) > 1 and rng.random() < 0.15 else fp.people[:1]
                for p in people:
                    regs.append(self.make_registration(ev, fp, p, banks, bank_staff,
                                                       forced_checkin=id(fp) in event_only))
        db.session.add_all(regs)
        self.registrations = regs

    def make_registration(self, ev: Event, fp: FirmPlan, p: Person, banks, bank_staff, forced_checkin=False):
        rng = self.rng
        held = ev.status == EventStatus.HELD
        sources = [(RegistrationSource.INVITED, 45), (RegistrationSource.SELF, 25), (RegistrationSource.BUREAU, 20)]
        source = self.weighted(sources + ([(RegistrationSource.WALK_IN, 10)] if held else []))
        if source == RegistrationSource.WALK_IN:
            reg_day = ev.held_on
        else:
            reg_day = ev.held_on - timedelta(days=rng.randint(3, 20))
            if ev.status == EventStatus.PLANNED:  # an upcoming event: registered already, never in the future
                reg_day = min(reg_day, self.today - timedelta(days=1))
        creator = None
        if source in (RegistrationSource.INVITED, RegistrationSource.WALK_IN) and bank_staff:
            creator = rng.choice(bank_staff)
        elif source == RegistrationSource.BUREAU:
            creator = rng.choice(self.bureau_users)
        need = ""
        if rng.random() < 0.6:
            need = f"{rng.choice(PURPOSES)}，需求约{rng.choice([100, 200, 300, 500, 800, 1000, 2000])}万元"
        created = local_ts(reg_day, rng.randint(9, 21), rng.randint(0, 59))
        reg = Registration(
            event_id=ev.id, firm_id=fp.firm.id, person_name=p.name, person_title=p.title, mobile=p.mobile,
            need_summary=need, preferred_bank_id=rng.choice(banks).id if rng.random() < 0.7 else None,
            source=source, created_by_id=creator.id if creator else None,
            consent_at=created if source == RegistrationSource.SELF else None,
            created_at=created, modified_at=created,
        )
        if ev.status == EventStatus.CANCELLED:
            reg.status = RegistrationStatus.CANCELLED
            reg.remarks = "活动取消，已电话通知"
        elif ev.status == EventStatus.PLANNED:
            reg.status = self.weighted([(RegistrationStatus.CONFIRMED, 40), (RegistrationStatus.REGISTERED, 55),
                                        (RegistrationStatus.CANCELLED, 5)])
        else:
            r = rng.random()
            if source == RegistrationSource.WALK_IN or forced_checkin or r < 0.85:
                reg.status = RegistrationStatus.CONFIRMED
                at = datetime.combine(ev.held_on, ev.start_time) + timedelta(minutes=rng.randint(-30, 25))
                reg.checked_in_at = at.replace(tzinfo=LOCAL_TZ).astimezone(timezone.utc)
                if source == RegistrationSource.WALK_IN:
                    reg.checkin_method = rng.choice([CheckinMethod.STAFF, CheckinMethod.PAPER])
                else:
                    reg.checkin_method = self.weighted([(CheckinMethod.QR, 60), (CheckinMethod.STAFF, 30),
                                                        (CheckinMethod.PAPER, 10)])
                reg.modified_at = reg.checked_in_at
            elif r < 0.95:
                reg.status = rng.choice([RegistrationStatus.REGISTERED, RegistrationStatus.CONFIRMED])
                reg.absence_reason = rng.choice(ABSENCE)
            else:
                reg.status = RegistrationStatus.CANCELLED
                reg.remarks = "企业临时取消报名"
        return reg

    # --- credit -----------------------------------------------------------------------------------------

    def build_applications(self):
        rng = self.rng
        apps = []
        for plan in self.apps:
            a = plan.acct
            firm = a.fp.firm
            ip = plan.product == "ip_pledge"
            rm = a.owner
            stage = plan.steps[-1][1]
            app = CreditApplication(
                bank_id=a.bank.id, branch_id=self.branch_id(rm), rm_id=rm.id, campaign_id=self.campaign.id,
                firm_id=firm.id, product_code=plan.product, requested_fen=plan.requested_fen,
                accepted_on=plan.accepted_on, stage=stage, is_first_loan=plan.first_loan,
                guarantee=("知识产权质押" + ("、实际控制人连带责任保证" if rng.random() < 0.4 else "")) if ip
                else rng.choice(GUARANTEES),
                in_risk_pool=rng.random() < (0.55 if ip else 0.2), created_by_id=rm.id,
                created_at=local_ts(plan.accepted_on, 11), modified_at=local_ts(plan.steps[-1][2], 16),
            )
            if hasattr(CreditApplication, "requested_term_months"):
                app.requested_term_months = plan.requested_term
            decided = plan.decided_on
            if decided is not None:
                app.decided_on = decided
                app.high_tech_at_decision = firm.is_high_tech_on(decided)
            if stage == Stage.DECLINED:
                reasons = DECLINE_REASONS if ip else [(c, w) for c, w in DECLINE_REASONS if not c.startswith("ip_")]
                app.decline_reason_code = self.weighted(reasons)
                app.remarks = "审批未通过，已向企业反馈原因，建议补强后再申请。"
            elif stage == Stage.WITHDRAWN:
                app.remarks = rng.choice(["企业已获得股东增资，撤回申请。", "企业选择其他银行产品，撤回申请。",
                                          "企业融资计划推迟，撤回申请。"])
            if any(t == Stage.APPROVED for _f, t, _d in plan.steps):
                dr = plan.draws
                approved_wan = max(50, plan.requested_fen // FEN_PER_WAN * dr["approved_pct"] // 1000 * 10)
                app.approved_fen = min(plan.requested_fen, wan(approved_wan))
                app.rate_bp = dr["rate"] - dr["discount"]
                app.discount_bp = dr["discount"]
                app.term_months = plan.requested_term
                app.has_subsidy = rng.random() < (0.6 if ip else 0.25)
            for _f, t, d in plan.steps:
                if t == Stage.DISBURSED:
                    app.disbursed_on = d
                    app.disbursed_fen = app.approved_fen if rng.random() < 0.85 else \
                        app.approved_fen * 8 // 10 // FEN_PER_WAN * FEN_PER_WAN
                    app.matures_on = add_months(d, app.term_months)
            plan.app = app
            apps.append(app)
        db.session.add_all(apps)
        db.session.flush()
        changes = []
        for plan in self.apps:
            mgr = self.managers[plan.acct.bank.code]
            for from_stage, to_stage, day in plan.steps:
                by = mgr if to_stage in (Stage.APPROVED, Stage.DECLINED) else plan.app.rm
                changes.append(StageChange(
                    application_id=plan.app.id, bank_id=plan.app.bank_id, from_stage=from_stage, to_stage=to_stage,
                    changed_on=day, changed_at=local_ts(day, 16, rng.randint(0, 59)), by_id=by.id,
                    note=self.stage_note(plan, to_stage)))
        db.session.add_all(changes)
        self.stage_changes = changes

    def stage_note(self, plan: AppPlan, to: Stage) -> str:
        app = plan.app
        if to == Stage.ACCEPTED:
            return "资料齐全，正式受理"
        if to == Stage.UNDER_REVIEW:
            return "提交授信审批"
        if to == Stage.APPROVED:
            return f"审批通过，授信 {app.approved_fen // FEN_PER_WAN} 万元，期限 {app.term_months} 个月"
        if to == Stage.DECLINED:
            return "审批否决"
        if to == Stage.WITHDRAWN:
            return "企业撤回申请"
        if to == Stage.CONTRACTED:
            return "签订借款合同"
        if to == Stage.PLEDGE_REGISTERED:
            return "完成专利权质押登记"
        if to == Stage.DISBURSED:
            return f"放款 {app.disbursed_fen // FEN_PER_WAN} 万元"
        return "贷款结清" if app.matures_on and plan.steps[-1][2] >= app.matures_on else "提前结清"

    def build_ip(self):
        """Patents for every IP-pledge application; pledges from the contract on; valuations."""
        rng = self.rng
        used_numbers: set[str] = set()
        assets, pledges, valuations = [], [], []
        reg_seq = rng.randint(10000, 40000)
        for plan in self.apps:
            if plan.product != "ip_pledge":
                continue
            app = plan.app
            firm = plan.acct.fp.firm
            stages = [t for _f, t, _d in plan.steps]
            day_of = {t: d for _f, t, d in plan.steps}
            maturity = app.matures_on or add_months(app.decided_on or app.accepted_on, plan.requested_term)
            # who owns the patents: the borrower, or (cross-border) its Hong Kong affiliate, or its group
            if firm.is_cross_border and rng.random() < 0.8:
                relation, owner = OwnerRelation.HK_AFFILIATE, f"{plan.acct.fp.brand}科技（香港）有限公司"
            else:
                relation = self.weighted([(OwnerRelation.SELF, 85), (OwnerRelation.CONTROLLING_SHAREHOLDER, 8),
                                          (OwnerRelation.PARENT, 7)])
                owner = {OwnerRelation.SELF: firm.name, OwnerRelation.PARENT: f"深圳市{plan.acct.fp.brand}控股有限公司",
                         OwnerRelation.CONTROLLING_SHAREHOLDER: plan.acct.fp.people[0].name}[relation]
            n = rng.choice([1, 1, 2, 2, 3])
            patents = []
            for _ in range(n):
                invention = rng.random() < 0.7
                while True:
                    if invention:
                        year = rng.randint(2012, 2022)
                    else:  # utility models last 10 years: recent ones only, so they outlive the loan
                        year = rng.randint(max(2021, maturity.year - 8), 2024)
                    type_digit = "1" if invention else "2"
                    digits = f"{year}{type_digit}{rng.randint(100000, 1999999):07d}"
                    number = f"{digits}.{patent_check_char(digits)}"
                    if number not in used_numbers:
                        used_numbers.add(number)
                        break
                filed = date(year, rng.randint(1, 12), rng.randint(1, 28))
                granted = filed + timedelta(days=rng.randint(420, 1000) if invention else rng.randint(150, 330))
                granted = min(granted, plan.accepted_on - timedelta(days=30))
                expires = years_later(filed, 20 if invention else 10) - timedelta(days=1)
                asset = IpAsset(
                    patent_no=number, kind=PatentKind.INVENTION if invention else PatentKind.UTILITY_MODEL,
                    title=rng.choice(PATENT_TITLES[firm.industry_code]), granted_on=granted, expires_on=expires,
                    legal_status="valid", owner_name=owner)
                patents.append(asset)
            assets += patents
            # valuation: requested with the application, mostly within the 3-working-day promise
            requested_on = self.workday_on_or_before(plan.accepted_on - timedelta(days=rng.randint(0, 4)))
            completed = self.add_wd(requested_on, rng.randint(1, 3) if rng.random() < 0.8 else rng.randint(4, 6))
            if completed > ANCHOR:
                completed = None
            base = app.approved_fen or plan.requested_fen
            factor = rng.randint(160, 300) if app.decline_reason_code != "ip_value_low" else rng.randint(50, 90)
            valuations.append(Valuation(
                bank_id=app.bank_id, application=app, ip_asset=patents[0] if n == 1 else None,
                valuer=rng.choice(VALUERS), amount_fen=base * factor // 100 // FEN_PER_WAN * FEN_PER_WAN
                if completed else None, requested_on=requested_on, completed_on=completed))
            if Stage.CONTRACTED not in stages:
                continue
            registered = Stage.PLEDGE_REGISTERED in stages
            share = app.approved_fen // n
            for k, asset in enumerate(patents):
                p = Pledge(bank_id=app.bank_id, application=app, ip_asset=asset, owner_relation=relation,
                           status=PledgeStatus.ACTIVE)
                if relation == OwnerRelation.HK_AFFILIATE:  # licensed to the mainland borrower
                    p.licence_no = f"X{plan.accepted_on.year}44{rng.randint(0, 9_999_999):07d}"
                    p.licence_note = "香港关联公司独占许可内地借款企业实施，许可合同已在国家知识产权局备案"
                if registered:
                    p.registered_on = self.workday_on_or_before(
                        day_of[Stage.PLEDGE_REGISTERED] - timedelta(days=rng.randint(0, 2)))
                    p.registered_on = max(p.registered_on, day_of[Stage.CONTRACTED])
                    reg_seq += rng.randint(1, 40)
                    p.registration_no = f"Y{p.registered_on.year}980{reg_seq:06d}"
                    p.secured_fen = app.approved_fen - share * (n - 1) if k == n - 1 else share
                if Stage.REPAID in stages:
                    p.status = PledgeStatus.RELEASED
                    p.released_on = day_of[Stage.REPAID]
                pledges.append(p)
        db.session.add_all(assets)
        db.session.add_all(pledges)
        db.session.add_all(valuations)
        self.assets, self.pledges, self.valuations = assets, pledges, valuations

    def build_pool(self):
        issue_on = date(2026, 10, 28)

        def eligible(bank):
            return [p.app for p in self.apps
                    if p.app.bank_id == bank.id and p.product == "ip_pledge" and p.app.stage == Stage.DISBURSED
                    and p.app.disbursed_on is not None and p.app.disbursed_on < issue_on]

        bank = self.orgs["ICBC-SZ"] if len(eligible(self.orgs["ICBC-SZ"])) >= 3 else max(
            self.banks, key=lambda b: len(eligible(b)))
        loans = eligible(bank)[:8]
        pool = SecuritisationPool(bank_id=bank.id, name=f"{bank.short_name}—龙岗知识产权证券化资产支持专项计划（第一期）",
                                  exchange="深圳证券交易所", issue_on=issue_on,
                                  created_by_id=self.managers[bank.code].id, loans=loans)
        db.session.add(pool)
        self.pool = pool

    def run(self) -> list[tuple[str, str]]:
        self.industries = {i.code: i for i in db.session.scalars(sa.select(Industry))}
        ip_product = db.session.get(CreditProduct, "ip_pledge")
        self.pledge_first = ip_product is None or ip_product.pledge_before_disbursement
        self.build_orgs_and_users()
        self.build_campaign()
        self.build_firms()
        self.build_accounts()
        self.plan_applications()
        self.build_contacts_and_accounts()
        self.build_events()
        self.build_visits()
        self.build_follow_ups()
        self.build_registrations()
        self.build_applications()
        self.build_ip()
        self.build_pool()
        db.session.flush()
        return list(DEMO_LOGINS)


def load(seed: int = 20261126) -> list[tuple[str, str]]:
    """Build the demo campaign into the current session (flushed, not committed).

    Returns one (role, username) login per role; every demo user's password is :data:`DEMO_PASSWORD`.
    """
    taken = db.session.scalar(sa.select(sa.func.count()).select_from(Organisation)
                              .where(Organisation.code.in_([o[0] for o in ORGS])))
    taken_users = db.session.scalar(sa.select(sa.func.count()).select_from(User)
                                    .where(User.username.in_([u[0] for u in USERS])))
    if taken or taken_users or db.session.scalar(sa.select(Campaign.id).where(Campaign.code == CAMPAIGN_CODE)):
        raise ValueError("演示数据已存在（机构、账号或活动代码已被占用） / the demo data is already loaded "
                         "(its organisation codes, usernames or campaign code are taken)")
    return _Demo(seed).run()
