"""The stage machine of a credit application: which moves are allowed, as pure functions.

accepted → under_review | withdrawn
under_review → approved | declined | withdrawn
approved → contracted
then, for IP-pledge products, pledge registration and disbursement in the order of
``CreditProduct.pledge_before_disbursement``; products without pledges skip pledge_registered:

    pledge first:       contracted → pledge_registered → disbursed → repaid
    disbursement first: contracted → disbursed → pledge_registered → repaid
    no pledge:          contracted → disbursed → repaid

declined, withdrawn and repaid are final.
"""
from __future__ import annotations

from crm.credit.models import Stage
from crm.i18n import lazy_gettext as _l

FINAL_STAGES = frozenset({Stage.DECLINED, Stage.WITHDRAWN, Stage.REPAID})

STAGE_LABELS = {
    Stage.ACCEPTED: _l("Accepted"),
    Stage.UNDER_REVIEW: _l("Under review"),
    Stage.APPROVED: _l("Approved"),
    Stage.DECLINED: _l("Declined"),
    Stage.WITHDRAWN: _l("Withdrawn"),
    Stage.CONTRACTED: _l("Contracted"),
    Stage.PLEDGE_REGISTERED: _l("Pledge registered"),
    Stage.DISBURSED: _l("Disbursed"),
    Stage.REPAID: _l("Repaid"),
}

#: the button label of a move to each stage
ACTION_LABELS = {
    Stage.UNDER_REVIEW: _l("Start review"),
    Stage.APPROVED: _l("Approve"),
    Stage.DECLINED: _l("Decline"),
    Stage.WITHDRAWN: _l("Withdraw"),
    Stage.CONTRACTED: _l("Contract signed"),
    Stage.PLEDGE_REGISTERED: _l("Pledge registered"),
    Stage.DISBURSED: _l("Disburse"),
    Stage.REPAID: _l("Repaid"),
}


def has_pledge_stage(product) -> bool:
    """Only IP-pledge products go through pledge registration."""
    return bool(product is not None and product.is_ip_pledge)


def next_stages(stage: Stage, product) -> tuple[Stage, ...]:
    """The stages an application at ``stage`` of ``product`` may move to, in display order."""
    stage = Stage(stage)
    if stage == Stage.ACCEPTED:
        return (Stage.UNDER_REVIEW, Stage.WITHDRAWN)
    if stage == Stage.UNDER_REVIEW:
        return (Stage.APPROVED, Stage.DECLINED, Stage.WITHDRAWN)
    if stage == Stage.APPROVED:
        return (Stage.CONTRACTED,)
    if stage in FINAL_STAGES:
        return ()
    if not has_pledge_stage(product):
        order = (Stage.CONTRACTED, Stage.DISBURSED, Stage.REPAID)
    elif product.pledge_before_disbursement:
        order = (Stage.CONTRACTED, Stage.PLEDGE_REGISTERED, Stage.DISBURSED, Stage.REPAID)
    else:
        order = (Stage.CONTRACTED, Stage.DISBURSED, Stage.PLEDGE_REGISTERED, Stage.REPAID)
    if stage not in order:
        return ()
    i = order.index(stage)
    return order[i + 1:i + 2]


def can_move(stage: Stage, to: Stage, product) -> bool:
    return Stage(to) in next_stages(stage, product)


def post_approval_path(product) -> tuple[Stage, ...]:
    """The stages after approval for this product, in order (for the progress display)."""
    if not has_pledge_stage(product):
        return (Stage.CONTRACTED, Stage.DISBURSED, Stage.REPAID)
    if product.pledge_before_disbursement:
        return (Stage.CONTRACTED, Stage.PLEDGE_REGISTERED, Stage.DISBURSED, Stage.REPAID)
    return (Stage.CONTRACTED, Stage.DISBURSED, Stage.PLEDGE_REGISTERED, Stage.REPAID)
