"""Money, dates and masking for templates: money is integer fen, shown in 万元 or 亿元."""
from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Optional
from zoneinfo import ZoneInfo

from flask import Flask

FEN_PER_WAN = 1_000_000  # 1 万元 = 10,000 元 = 1,000,000 分
FEN_PER_YI = 10_000 * FEN_PER_WAN
LOCAL_TZ = ZoneInfo("Asia/Shanghai")


def wan_to_fen(value) -> int:
    """Exact conversion of an amount in 万元 (str, int or Decimal; never float) to integer fen."""
    if isinstance(value, float):
        value = repr(value)
    try:
        d = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation as exc:
        raise ValueError("not a number") from exc
    if not d.is_finite():
        raise ValueError("not a number")
    fen = d * FEN_PER_WAN
    if fen != fen.to_integral_value():
        raise ValueError("more than 6 decimal places in 万元")
    return int(fen)


def fen_to_wan(fen: Optional[int]) -> Optional[Decimal]:
    """Exact 万元 as a Decimal, trailing zeros removed."""
    if fen is None:
        return None
    d = Decimal(fen) / FEN_PER_WAN
    return d.quantize(Decimal(1)) if d == d.to_integral_value() else d.normalize()


def format_wan(fen: Optional[int], places: int = 2) -> str:
    """Fen as 万元 with thousands separators, e.g. 1,234.50."""
    if fen is None:
        return ""
    d = (Decimal(fen) / FEN_PER_WAN).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return f"{d:,}"


def format_money(fen: Optional[int]) -> str:
    """A total for people: 亿元 from 1 亿 up, otherwise 万元."""
    if fen is None:
        return ""
    if abs(fen) >= FEN_PER_YI:
        d = (Decimal(fen) / FEN_PER_YI).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        return f"{d:,} 亿元"
    return f"{format_wan(fen)} 万元"


def local_dt(value: Optional[datetime]) -> str:
    if value is None:
        return ""
    return value.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")


def today_local() -> date:
    """Today in Shenzhen."""
    return datetime.now(LOCAL_TZ).date()


def register(app: Flask) -> None:
    from crm.core.validators import mask_mobile

    app.jinja_env.filters["wan"] = format_wan
    app.jinja_env.filters["money"] = format_money
    app.jinja_env.filters["local_dt"] = local_dt
    app.jinja_env.filters["mask_mobile"] = mask_mobile
    app.jinja_env.globals["today_local"] = today_local
    from crm.core.urls import row_url

    app.jinja_env.globals["row_url"] = row_url
    from flask_babel import get_locale

    app.jinja_env.globals["get_locale"] = get_locale
    from crm.core import navigation

    navigation.register(app)
