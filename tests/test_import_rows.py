"""The import rows' typed getters: the shortcut of ``Row.integer`` for plain digit cells (taken for almost every
cell of a large ledger) gives exactly the value and the error the decimal parsing gives."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crm.imports.framework import Ledger, Row

LEDGER = Ledger(kind="test", label="test", columns={"n": ("数量", "count")}, required=(),
                parse_row=lambda row, ctx: None, key=lambda parsed: parsed, apply=lambda parsed, ctx: "created")


def reference_integer(row: Row, key: str, *, required: bool, minimum: int, maximum: int):
    """``Row.integer`` as it parsed every cell before the shortcut."""
    value = row.decimal(key, required=required, minimum=None)
    if value is None:
        return None
    if value != value.to_integral_value():
        row.error(key, "应为整数")
        return None
    if not (minimum <= value <= maximum):
        row.error(key, f"应在 {minimum} 到 {maximum} 之间")
        return None
    return int(value)


CELLS = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.from_regex(r"[0-9]{1,12}", fullmatch=True),
    st.text(alphabet="0123456789 ,.-+eE０１２٣५²\u3000\t", max_size=14),
)


@given(CELLS, st.booleans(), st.integers(0, 5), st.integers(5, 10**10))
def test_an_integer_cell_gives_the_value_and_error_the_decimal_parsing_gives(cell, required, minimum, maximum):
    fast, reference = (Row(2, {"n": cell}, {"n": "数量"}, LEDGER) for _ in range(2))
    got = fast.integer("n", required=required, minimum=minimum, maximum=maximum)
    assert got == reference_integer(reference, "n", required=required, minimum=minimum, maximum=maximum)
    assert got is None or type(got) is int
    assert fast.errors == reference.errors
