"""Tests for crm.core.validators: vectors from /work/shared/VALIDATORS.md plus property tests."""

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm.core.validators import (
    CREDIT_CODE_CHARSET,
    CREDIT_CODE_DEPARTMENTS,
    CREDIT_CODE_WEIGHTS,
    INDUSTRY_SECTIONS,
    SHENZHEN_AREAS,
    PatentNumber,
    ValidationError,
    credit_code_check_char,
    credit_code_org_check_ok,
    is_valid_credit_code,
    is_valid_mobile,
    is_valid_patent_number,
    mask_mobile,
    normalize_credit_code,
    normalize_mobile,
    normalize_patent_number,
    normalize_text,
    patent_check_char,
    section_for_division,
    shenzhen_area,
    validate_industry_section,
    validate_section_division,
)

TODAY = date(2026, 11, 26)
TENCENT = "9144030071526726XG"

# --------------------------------------------------------------------------------------------------
# Common
# --------------------------------------------------------------------------------------------------


def test_normalize_text_turns_full_width_into_ascii_and_strips():
    assert normalize_text("  ＡＢＣ１２３　") == "ABC123"
    assert normalize_text(None) == ""


def test_validation_error_is_a_value_error_with_code_and_bilingual_messages():
    with pytest.raises(ValueError) as exc:
        normalize_credit_code("91350100M000100Y44")
    err = exc.value
    assert isinstance(err, ValidationError)
    assert err.code == "checksum"
    assert str(err) == err.message_zh
    assert "校验" in err.message_zh
    assert "check character" in err.message_en


# --------------------------------------------------------------------------------------------------
# (a) Unified social credit code
# --------------------------------------------------------------------------------------------------


def test_credit_code_weights_are_powers_of_three_mod_31():
    assert CREDIT_CODE_WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
    assert len(CREDIT_CODE_CHARSET) == 31
    assert not set("IOSVZ") & set(CREDIT_CODE_CHARSET)


def test_credit_code_check_char_matches_the_standard_worked_example():
    assert credit_code_check_char("91350100M000100Y4") == "3"
    assert credit_code_check_char("9144030071526726X") == "G"
    assert credit_code_check_char("914403001922038216"[:17]) == "6"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("9144030071526726XG", "9144030071526726XG"),
        ("914403001922038216", "914403001922038216"),
        ("91350100M000100Y43", "91350100M000100Y43"),
        (" 9144-0300-7152-6726-xg ", "9144030071526726XG"),
        ("９１４４０３００７１５２６７２６ＸＧ", "9144030071526726XG"),
        ("N2440307MA5FB6J821", "N2440307MA5FB6J821"),
        ("52440300MA5FB6J82D", "52440300MA5FB6J82D"),
        ("12440300MA5FB6J82H", "12440300MA5FB6J82H"),
    ],
)
def test_credit_code_accepts_valid_vectors_and_normalizes(raw, expected):
    assert normalize_credit_code(raw) == expected
    assert is_valid_credit_code(raw)


def test_credit_code_accepts_department_letters_that_stdnum_rejects():
    # python-stdnum 2.2 requires digits in positions 1-8; GB 32100 allows A/N/Y departments.
    assert normalize_credit_code("N2440307MA5FB6J821").startswith("N2")


@pytest.mark.parametrize(
    "raw, code",
    [
        ("91350100M000100Y4Z", "format"),
        ("91350100M000100Y44", "checksum"),
        ("9144030071526726X", "format"),
        ("9144030071526726XG1", "format"),
        ("9144A30071526726XG", "format"),
        ("B144030071526726XG", "dept_category"),
        ("9444030071526726XG", "dept_category"),
        ("", "format"),
        ("   ", "format"),
        (None, "format"),
        ("9144030017526726XG", "checksum"),
    ],
)
def test_credit_code_rejects_invalid_vectors_with_reason(raw, code):
    with pytest.raises(ValidationError) as exc:
        normalize_credit_code(raw)
    assert exc.value.code == code
    assert not is_valid_credit_code(raw)


@pytest.mark.parametrize("letter", list("IOSVZ"))
@pytest.mark.parametrize("pos", range(8, 18))
def test_credit_code_rejects_excluded_letters_anywhere_in_body_as_format(letter, pos):
    bad = TENCENT[:pos] + letter + TENCENT[pos + 1 :]
    with pytest.raises(ValidationError) as exc:
        normalize_credit_code(bad)
    assert exc.value.code == "format"


def test_credit_code_rejects_adjacent_transposition():
    with pytest.raises(ValidationError) as exc:
        normalize_credit_code("9144030017526726XG")  # "71" swapped to "17"
    assert exc.value.code == "checksum"


def test_credit_code_rejects_early_fujian_pilot_codes_on_checksum():
    for code in ("91350100M0001TGQXM", "91350211M0000XUF46", "91350203M0001FUE2P"):
        with pytest.raises(ValidationError) as exc:
            normalize_credit_code(code)
        assert exc.value.code == "checksum"


def test_credit_code_org_check_holds_for_worked_examples():
    assert credit_code_org_check_ok("91350100M000100Y43")
    assert credit_code_org_check_ok("9144030071526726XG")
    assert credit_code_org_check_ok("914403001922038216")
    assert not credit_code_org_check_ok("9144030071526727XG")


_DEPT_CATEGORY = sorted(d + c for d, cats in CREDIT_CODE_DEPARTMENTS.items() for c in cats)
_CHARSET = st.sampled_from(CREDIT_CODE_CHARSET)


@st.composite
def credit_code_bodies(draw):
    """17-char bodies: valid department/category, 6-digit region, 9 chars from the charset."""
    head = draw(st.sampled_from(_DEPT_CATEGORY))
    region = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=6, max_size=6)))
    body = "".join(draw(st.lists(_CHARSET, min_size=9, max_size=9)))
    return head + region + body


@given(credit_code_bodies())
def test_credit_code_any_body_with_computed_check_char_validates(body):
    code = body + credit_code_check_char(body)
    assert normalize_credit_code(code) == code
    assert normalize_credit_code(code.lower()) == code


@given(credit_code_bodies(), st.sampled_from(CREDIT_CODE_CHARSET + "IOSVZ"))
def test_credit_code_any_other_check_char_fails(body, other):
    good = credit_code_check_char(body)
    if other == good:
        return
    with pytest.raises(ValidationError) as exc:
        normalize_credit_code(body + other)
    assert exc.value.code == ("format" if other in "IOSVZ" else "checksum")


@given(credit_code_bodies(), st.integers(min_value=0, max_value=15))
def test_credit_code_any_adjacent_transposition_of_distinct_chars_fails(body, i):
    code = body + credit_code_check_char(body)
    if code[i] == code[i + 1]:
        return
    swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
    assert not is_valid_credit_code(swapped)


@given(credit_code_bodies(), st.integers(min_value=0, max_value=16), _CHARSET)
def test_credit_code_any_single_substitution_fails(body, i, ch):
    code = body + credit_code_check_char(body)
    if code[i] == ch:
        return
    assert not is_valid_credit_code(code[:i] + ch + code[i + 1 :])


# --------------------------------------------------------------------------------------------------
# (b) Mobile numbers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("13800138000", "13800138000"),
        ("19212345678", "19212345678"),
        ("16612345678", "16612345678"),
        ("17012345678", "17012345678"),
        ("+86 138 0013 8000", "13800138000"),
        ("0086-138-0013-8000", "13800138000"),
        ("86 13800138000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),
        ("(138)0013-8000", "13800138000"),
        ("＋８６　１３８－００１３－８０００", "13800138000"),
    ],
)
def test_mobile_accepts_valid_vectors_and_normalizes(raw, expected):
    assert normalize_mobile(raw) == expected
    assert is_valid_mobile(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "1380013800",
        "138001380000",
        "12345678901",
        "23800138000",
        "1380013800O",
        "+85291234567",
        "0755-12345678",
        "075512345678",
        "",
        None,
        "138 0013 800a",
        "+1 415 555 2671",
        "10086",
        "1440123456789",
        "86-1380013800",
    ],
)
def test_mobile_rejects_invalid_vectors(raw):
    with pytest.raises(ValidationError) as exc:
        normalize_mobile(raw)
    assert exc.value.code == "format"
    assert not is_valid_mobile(raw)


@pytest.mark.parametrize("raw", ["14912345678", "15412345678", "16112345678", "17412345678", "19412345678"])
def test_mobile_permissive_rule_accepts_segments_libphonenumber_rejects(raw):
    # Documented choice: the hard check is the permissive ^1[3-9]\d{9}$ because segments keep changing.
    assert normalize_mobile(raw) == raw


def test_mask_mobile_shows_first_three_and_last_four():
    assert mask_mobile("13800138000") == "138****8000"
    assert mask_mobile("+86 138 0013 8000") == "138****8000"


@pytest.mark.parametrize("empty", ["", None])
def test_mask_mobile_is_safe_for_empty(empty):
    assert mask_mobile(empty) == ""


def test_mask_mobile_hides_middle_of_non_mobile_input():
    assert mask_mobile("0755-12345678") == "075*****5678"
    assert mask_mobile("10086") == "*****"


_MOBILES = st.from_regex(r"\A1[3-9][0-9]{9}\Z")


@given(_MOBILES, st.sampled_from(["", "+86", "0086", "86 ", "+86 "]))
def test_mask_mobile_never_reveals_middle_four_digits(m, prefix):
    masked = mask_mobile(prefix + m)
    assert masked == m[:3] + "****" + m[7:]
    assert masked[3:7] == "****"


@given(st.text())
def test_mask_mobile_never_crashes_and_hides_middle_of_valid_input(s):
    masked = mask_mobile(s)
    assert isinstance(masked, str)
    if is_valid_mobile(s):
        assert masked[3:7] == "****"


# --------------------------------------------------------------------------------------------------
# (c) Patent application numbers
# --------------------------------------------------------------------------------------------------


def test_patent_check_char_matches_worked_examples():
    assert patent_check_char("201710601862") == "3"
    assert patent_check_char("95115608") == "X"
    assert patent_check_char("202010123456") == "2"


@pytest.mark.parametrize(
    "raw, canonical, year, type_digit, kind",
    [
        ("ZL202010123456.2", "202010123456.2", 2020, 1, "invention"),
        ("CN202020123456.8", "202020123456.8", 2020, 2, "utility_model"),
        ("202030123456.3", "202030123456.3", 2020, 3, "design"),
        ("202080123456.0", "202080123456.0", 2020, 8, "pct_invention"),
        ("201710601862.3", "201710601862.3", 2017, 1, "invention"),
        ("95115608.X", "95115608.X", 1995, 1, "invention"),
        ("zl95115608.x", "95115608.X", 1995, 1, "invention"),
        ("ZL 2020 1 0123456.2", "202010123456.2", 2020, 1, "invention"),
        ("2020101234562", "202010123456.2", 2020, 1, "invention"),
        ("ＺＬ２０２０１０１２３４５６．２", "202010123456.2", 2020, 1, "invention"),
    ],
)
def test_patent_accepts_valid_vectors_and_normalizes(raw, canonical, year, type_digit, kind):
    p = normalize_patent_number(raw, today=TODAY)
    assert p == PatentNumber(canonical=canonical, year=year, type_digit=type_digit, kind=kind)
    assert p.display == "ZL" + canonical
    assert str(p) == canonical
    assert is_valid_patent_number(raw, today=TODAY)


def test_patent_number_is_frozen():
    p = normalize_patent_number("ZL202010123456.2", today=TODAY)
    with pytest.raises(AttributeError):
        p.year = 2021  # type: ignore[misc]


def test_patent_pct_utility_model_kind():
    digits = "202090123456"
    p = normalize_patent_number(digits + "." + patent_check_char(digits), today=TODAY)
    assert p.kind == "pct_utility_model"


@pytest.mark.parametrize(
    "raw, code",
    [
        ("ZL202010123456.7", "checksum"),
        ("2020101234567", "checksum"),
        ("202040123456.1", "type"),
        ("202010123456", "format"),
        ("20201012345.6", "format"),
        ("2020101234567.2", "format"),
        ("203010123456.5", "year"),
        ("199910123456.3", "year"),
        ("ZL202010123 456.2", "format"),
        ("CN112345678A", "format"),
        ("ZL95115608.5", "checksum"),
        ("ZL202010123456.Y", "format"),
        ("", "format"),
        ("ZL", "format"),
    ],
)
def test_patent_rejects_invalid_vectors_with_reason(raw, code):
    with pytest.raises(ValidationError) as exc:
        normalize_patent_number(raw, today=TODAY)
    assert exc.value.code == code
    assert not is_valid_patent_number(raw, today=TODAY)


def test_patent_accepts_current_year_and_refuses_next_year():
    this_year = "202610000001"
    next_year = "202710000001"
    assert normalize_patent_number(this_year + patent_check_char(this_year), today=TODAY).year == 2026
    with pytest.raises(ValidationError) as exc:
        normalize_patent_number(next_year + patent_check_char(next_year), today=TODAY)
    assert exc.value.code == "year"


@pytest.mark.parametrize("yy, ok", [("85", True), ("99", True), ("00", True), ("03", True), ("04", False), ("84", False)])
def test_patent_two_digit_year_window(yy, ok):
    digits = yy + "100001"
    assert is_valid_patent_number(digits + "." + patent_check_char(digits), today=TODAY) is ok


def test_patent_rejects_two_spaces_between_parts():
    assert not is_valid_patent_number("ZL 2020  1 0123456.2", today=TODAY)
    assert not is_valid_patent_number("ZL 2020 1 0123456 .2", today=TODAY)


# --------------------------------------------------------------------------------------------------
# (f) Industry sections and divisions
# --------------------------------------------------------------------------------------------------


def test_industry_sections_are_twenty_contiguous_covering_97_divisions():
    assert [s[0] for s in INDUSTRY_SECTIONS] == list("ABCDEFGHIJKLMNOPQRST")
    expected_first = 1
    for _code, _name, first, last in INDUSTRY_SECTIONS:
        assert first == expected_first and last >= first
        expected_first = last + 1
    assert expected_first - 1 == 97


@pytest.mark.parametrize("code", list("ABCDEFGHIJKLMNOPQRST"))
def test_industry_section_accepts_a_to_t(code):
    assert validate_industry_section(code) == code


def test_industry_section_normalizes_lower_case():
    # Decision: lower case is normalized (like USCC/patents), not rejected.
    assert validate_industry_section("a") == "A"
    assert validate_industry_section(" ｃ ") == "C"


@pytest.mark.parametrize("code", ["U", "Z", "AA", "", None])
def test_industry_section_rejects_unknown(code):
    with pytest.raises(ValidationError) as exc:
        validate_industry_section(code)
    assert exc.value.code == "section"


@pytest.mark.parametrize("section, division", [("C", "39"), ("C", 39), ("C", "3911"), ("K", "70"), ("A", 1), ("T", "97")])
def test_section_division_accepts_matching_pairs(section, division):
    assert validate_section_division(section, division)[:2] == f"{int(str(division)[:2]):02d}"


@pytest.mark.parametrize("section, division", [("I", "39"), ("T", "98"), ("C", "12"), ("C", "4411")])
def test_section_division_rejects_mismatched_pairs(section, division):
    with pytest.raises(ValidationError) as exc:
        validate_section_division(section, division)
    assert exc.value.code == "section_division"


@pytest.mark.parametrize("division", ["3", "39111", "3a", "", None])
def test_section_division_rejects_malformed_codes(division):
    with pytest.raises(ValidationError) as exc:
        validate_section_division("C", division)
    assert exc.value.code == "format"


def test_section_for_division_finds_owning_section():
    assert section_for_division("39") == "C"
    assert section_for_division(65) == "I"
    assert section_for_division(98) is None


# --------------------------------------------------------------------------------------------------
# (e) Shenzhen areas
# --------------------------------------------------------------------------------------------------


def test_shenzhen_has_eleven_areas_nine_districts_one_functional_one_cooperation():
    assert len(SHENZHEN_AREAS) == 11
    kinds = [a["kind"] for a in SHENZHEN_AREAS]
    assert kinds.count("district") == 9
    assert kinds.count("functional") == 1
    assert kinds.count("cooperation") == 1
    assert len({a["code"] for a in SHENZHEN_AREAS}) == 11
    assert all(a["code"].isascii() and a["code"].isalpha() for a in SHENZHEN_AREAS)


def test_shenzhen_districts_have_gb2260_codes_and_special_areas_none():
    for a in SHENZHEN_AREAS:
        if a["kind"] == "district":
            assert a["gb2260"] is not None and a["gb2260"].startswith("4403") and len(a["gb2260"]) == 6
        else:
            assert a["gb2260"] is None
    assert shenzhen_area("longhua")["gb2260"] == "440309"
    assert shenzhen_area("longgang")["gb2260"] == "440307"


@pytest.mark.parametrize(
    "code, count",
    [
        ("futian", 10), ("luohu", 10), ("nanshan", 8), ("baoan", 10), ("longgang", 11), ("yantian", 4),
        ("longhua", 6), ("pingshan", 6), ("guangming", 6), ("dapeng", 3), ("shenshan", 4),
    ],
)
def test_shenzhen_area_street_counts(code, count):
    streets = shenzhen_area(code)["streets"]
    assert len(streets) == count
    assert len(set(streets)) == count


def test_longgang_streets_include_the_2016_splits():
    streets = shenzhen_area("longgang")["streets"]
    assert {"坂田街道", "吉华街道", "园山街道", "宝龙街道", "平湖街道"} <= set(streets)
    assert all(s.endswith("街道") for s in streets)


def test_dapeng_and_shenshan_units():
    assert shenzhen_area("dapeng")["streets"] == ["葵涌街道", "大鹏街道", "南澳街道"]
    assert shenzhen_area("shenshan")["streets"] == ["鹅埠镇", "小漠镇", "赤石镇", "鲘门镇"]
    assert shenzhen_area("nowhere") is None


@pytest.mark.parametrize("value, expected", [
    ("12", 12), (" 7 ", 7), (42, 42), (str(2**63 - 1), 2**63 - 1),
    ("0", None), ("-1", None), ("abc", None), ("1.5", None), ("0x10", None), ("", None), (None, None),
    (str(2**63), None), ("9" * 30, None),
])
def test_row_id_takes_a_positive_database_integer_or_nothing(value, expected):
    from crm.core.validators import row_id

    assert row_id(value) == expected
