"""The campaign numbers: one definition each (DOMAIN.md "The numbers"), in Chinese and English.

The texts are data shared by the dashboard tooltips, the API's OpenAPI document, the command line and the
Chinese progress report, so both languages live here side by side rather than in a message catalogue.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

#: what a metric's number is made of: plain count, 万元 amount, ratio 0..1, or basis points
COUNT, AMOUNT, RATE, BP = "count", "amount", "rate", "bp"


@dataclass(frozen=True)
class MetricDef:
    """One metric: its key, names, definition, unit and the records listed behind it."""

    key: str
    label_zh: str
    label_en: str
    definition_zh: str
    definition_en: str
    kind: str
    #: what the drill-down lists: firms / visits / events / attendances / staff / applications
    records: str
    #: targets may be set for it (counts and amounts)
    targetable: bool = True
    #: shown among the headline cards (False: funnel-only helpers)
    headline: bool = True

    def label(self, lang: Optional[str] = None) -> str:
        return self.label_en if _lang(lang) == "en" else self.label_zh

    def definition(self, lang: Optional[str] = None) -> str:
        return self.definition_en if _lang(lang) == "en" else self.definition_zh

    @property
    def is_amount(self) -> bool:
        return self.kind == AMOUNT


def _lang(lang: Optional[str]) -> str:
    if lang:
        return lang
    try:
        from flask_babel import get_locale

        loc = get_locale()
        return loc.language if loc is not None else "zh"
    except Exception:  # outside an app context (CLI without locale): Chinese, the default language
        return "zh"


_WINDOW_ZH = "统计期间为活动起止日期与所选日期范围的交集。"
_WINDOW_EN = "Counted within the campaign's dates intersected with the chosen date range."

METRICS: tuple[MetricDef, ...] = (
    MetricDef(
        "firms_reached", "触达企业", "Firms reached",
        "至少有一次走访（任何方式）或在已举办活动中有一次签到的不同企业数，按走访日期或活动举办日期计入。" + _WINDOW_ZH,
        "Distinct firms with at least one visit (any mode) or one checked-in registration at a held event, "
        "dated by the visit or the event. " + _WINDOW_EN,
        COUNT, "firms"),
    MetricDef(
        "firms_visited", "走访企业", "Firms visited",
        "至少有一次走访记录（不含已删除）的不同企业数。" + _WINDOW_ZH,
        "Distinct firms with at least one visit (deleted visits excluded). " + _WINDOW_EN,
        COUNT, "firms"),
    MetricDef(
        "visits", "走访次数", "Visits",
        "记录的走访次数（不含已删除），按走访日期计。" + _WINDOW_ZH,
        "Visits logged (deleted ones excluded), by visit date. " + _WINDOW_EN,
        COUNT, "visits"),
    MetricDef(
        "events_held", "活动场次", "Events held",
        "状态为“已举办”的银企对接活动场次，按举办日期计；按产业筛选时计标注该产业的活动，区域与街道筛选不适用于活动。"
        + _WINDOW_ZH,
        "Matchmaking events with status held, by event date; an industry filter keeps events tagged with that "
        "industry; area and street filters do not apply to events. " + _WINDOW_EN,
        COUNT, "events"),
    MetricDef(
        "firm_attendances", "参会企业(次)", "Firm attendances",
        "已举办活动中有签到记录的不同（活动，企业）组合数：同一企业参加两场计两次，同一场多人签到计一次。" + _WINDOW_ZH,
        "Distinct (event, firm) pairs with a checked-in registration at a held event: a firm at two events "
        "counts twice, several people of one firm at one event count once. " + _WINDOW_EN,
        COUNT, "attendances"),
    MetricDef(
        "staff_participating", "参与人数", "Staff taking part",
        "记录或陪同走访、或在已举办活动中担任工作人员的不同银行人员数（不含区科创局人员）。" + _WINDOW_ZH,
        "Distinct bank users who logged or accompanied a visit or staffed a held event (bureau staff "
        "excluded). " + _WINDOW_EN,
        COUNT, "staff"),
    MetricDef(
        "credit_firms", "授信户数", "Credit firms",
        "审批日期在期间内、已审批通过（含其后的签约、质押登记、放款、还款阶段）申请所涉及的不同企业数。" + _WINDOW_ZH,
        "Distinct firms with an approved application (approved, contracted, pledge registered, disbursed or "
        "repaid) decided in the window. " + _WINDOW_EN,
        COUNT, "firms"),
    MetricDef(
        "credit_firms_high_tech", "高新技术企业授信户数", "High-tech credit firms",
        "授信户中，审批当日持有有效高新技术企业证书的不同企业数（以审批时的状态为准，之后过期或取得不改变）。"
        + _WINDOW_ZH,
        "Credit firms that held a valid high-tech enterprise certificate on the decision day (the status as "
        "of the decision; later changes do not count). " + _WINDOW_EN,
        COUNT, "firms"),
    MetricDef(
        "credit_amount_wan", "授信金额（万元）", "Credit amount (10k CNY)",
        "审批日期在期间内的已通过申请的批准金额合计。" + _WINDOW_ZH,
        "Sum of the approved amounts of the applications approved in the window. " + _WINDOW_EN,
        AMOUNT, "applications"),
    MetricDef(
        "ip_pledge_deals", "知识产权质押笔数", "IP-pledge deals",
        "业务品种为知识产权质押、审批日期在期间内的已通过申请笔数。" + _WINDOW_ZH,
        "Approved applications of the IP-pledge product decided in the window. " + _WINDOW_EN,
        COUNT, "applications"),
    MetricDef(
        "ip_pledge_amount_wan", "知识产权质押金额（万元）", "IP-pledge amount (10k CNY)",
        "上述知识产权质押业务的批准金额合计。" + _WINDOW_ZH,
        "Sum of the approved amounts of those IP-pledge deals. " + _WINDOW_EN,
        AMOUNT, "applications"),
    MetricDef(
        "ip_pledge_registered_amount_wan", "质押登记金额（万元）", "IP-pledge registered amount (10k CNY)",
        "上述知识产权质押业务中已在国家知识产权局办理质押登记（有登记日期）的担保金额合计。" + _WINDOW_ZH,
        "Sum of the secured amounts registered with CNIPA (registration date recorded) for those IP-pledge "
        "deals. " + _WINDOW_EN,
        AMOUNT, "applications"),
    MetricDef(
        "disbursed_firms", "放款户数", "Disbursed firms",
        "放款日期在期间内的不同企业数。" + _WINDOW_ZH,
        "Distinct firms with a disbursement dated in the window. " + _WINDOW_EN,
        COUNT, "firms"),
    MetricDef(
        "disbursed_amount_wan", "放款金额（万元）", "Disbursed amount (10k CNY)",
        "放款日期在期间内的放款金额合计。" + _WINDOW_ZH,
        "Sum of the amounts disbursed in the window. " + _WINDOW_EN,
        AMOUNT, "applications"),
    MetricDef(
        "first_loan_firms", "首贷户数", "First-loan firms",
        "授信户中标记为首贷户的不同企业数（审批日期在期间内的已通过申请）。" + _WINDOW_ZH,
        "Distinct firms with an approved application decided in the window that is marked as the firm's "
        "first loan. " + _WINDOW_EN,
        COUNT, "firms"),
    MetricDef(
        "sla_hit_rate", "审批时效达标率", "Approval SLA hit rate",
        "审批日期在期间内的已审批申请（通过或否决）中，在所属档位工作日内完成审批的比例：申请金额≤1000万元（含）"
        "3个工作日，≤3000万元5个，其余10个；从受理次日起算至审批日（含），按国家法定节假日及调休和管理员调整计算。"
        "撤回及审批中的申请不计。" + _WINDOW_ZH,
        "Decided applications (approved or declined) decided within their tier's working days, divided by "
        "decided applications: requested ≤ 10M CNY inclusive 3 working days, ≤ 30M 5, larger 10; counted from "
        "the day after acceptance to the decision day inclusive on the PRC calendar with admin overrides. "
        "Withdrawn and open applications do not count. " + _WINDOW_EN,
        RATE, "applications", targetable=False),
    MetricDef(
        "avg_discount_bp", "平均利率优惠（BP）", "Average discount (BP)",
        "按批准金额加权的平均利率优惠：Σ(批准金额×优惠BP)÷Σ(批准金额)，仅计有优惠记录的已通过申请。" + _WINDOW_ZH,
        "Amount-weighted mean rate discount: Σ(approved amount × discount BP) ÷ Σ(approved amount) over "
        "approved applications with a discount recorded. " + _WINDOW_EN,
        BP, "applications", targetable=False),
    # Funnel steps (reached → need identified → applied → approved → disbursed)
    MetricDef(
        "firms_with_need", "有融资需求企业", "Firms with a financing need",
        "走访中记录了融资需求金额（大于零）的不同企业数。" + _WINDOW_ZH,
        "Distinct firms with a visit that recorded a financing need amount (above zero). " + _WINDOW_EN,
        COUNT, "firms", targetable=False, headline=False),
    MetricDef(
        "firms_applied", "申请授信企业", "Firms that applied",
        "受理日期在期间内的授信申请所涉及的不同企业数（任何阶段）。" + _WINDOW_ZH,
        "Distinct firms with a credit application accepted in the window (any stage). " + _WINDOW_EN,
        COUNT, "firms", targetable=False, headline=False),
)

METRIC_BY_KEY: dict[str, MetricDef] = {m.key: m for m in METRICS}
#: the 17 keys of the issue, in display order
METRIC_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS if m.headline)
FUNNEL_KEYS: tuple[str, ...] = ("firms_reached", "firms_with_need", "firms_applied", "credit_firms", "disbursed_firms")
TARGET_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS if m.targetable)
