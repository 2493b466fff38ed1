"""Template strings in the user's language: the callables each render binds to the request's translations
(crm/i18n.py) behave as Flask-Babel's own: the language chosen, ``force_locale``, plurals, and escaping."""
from __future__ import annotations

import re
from html import unescape

import pytest
from flask import render_template_string
from flask_babel import force_locale

from crm.extensions import db
from tests.factories_dashboard import build_known_campaign


def _count_badge(html: str) -> str:
    m = re.search(r'data-testid="record-count" data-count="(\d+)">([^<]*)<', html)
    assert m, html[:500]
    return m.group(1), m.group(2)


def test_page_strings_follow_the_language_the_user_chose(world, client, login_as):
    login_as("rm_a")
    html = client.get("/").get_data(as_text=True)
    assert "退出登录" in html and "Sign out" not in html
    client.post("/language/en", data={"next": "/"})
    html = client.get("/").get_data(as_text=True)
    assert "Sign out" in html and "退出登录" not in html
    html = client.get(f"/firms/{world.firm.id}").get_data(as_text=True)
    assert ">Timeline<" in html and "时间线" not in html


def test_a_value_inside_a_translated_string_is_escaped_and_the_string_is_not(world, client, login_as):
    world.rm_a.name = '<b class="x">李 & 王</b>'
    db.session.commit()
    for lang, greeting in (("zh", "您好，"), ("en", "Hello, ")):
        login_as("rm_a")
        if lang == "en":
            client.post("/language/en", data={"next": "/"})
        html = client.get("/").get_data(as_text=True)
        assert f"{greeting}&lt;b class=&#34;x&#34;&gt;李 &amp; 王&lt;/b&gt;" in html
        assert '<b class="x">' not in html


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_records_page_counts_in_the_users_language(world, client, login_as, lang):
    build_known_campaign(world)
    db.session.commit()
    login_as("bureau")
    if lang == "en":
        client.post("/language/en", data={"next": "/"})
    n, text = _count_badge(client.get("/dashboard/records?campaign=ZCR2026&metric=visits").get_data(as_text=True))
    assert int(n) > 1
    assert unescape(text) == (f"{n} 条记录" if lang == "zh" else f"{n} records")


@pytest.mark.parametrize("lang,n,expected", [("en", 1, "1 record"), ("en", 2, "2 records"), ("zh", 1, "1 条记录"),
                                             ("zh", 3, "3 条记录")])
def test_plural_strings_take_the_count_and_the_forced_locale(app, lang, n, expected):
    with app.test_request_context("/"), force_locale(lang):
        out = render_template_string("{{ ngettext('%(num)s record', '%(num)s records', n) }}|{{ _('Sign out') }}",
                                     n=n)
    assert out == expected + "|" + {"en": "Sign out", "zh": "退出登录"}[lang]


def test_a_strings_variables_may_have_any_name(app):
    """Keywords are the string's variables, whatever their names (the callables' own parameters are
    positional-only), as with Jinja's own callables."""
    with app.test_request_context("/"):
        out = render_template_string("{{ _('%(string)s·%(num)s·%(eval_ctx)s', string='<a>', num=2, eval_ctx='x') }}|"
                                     "{{ ngettext('%(num)s %(plural)s', '%(num)s %(plural)s', 3, plural='件') }}")
    assert out == "&lt;a&gt;·2·x|3 件"


def test_the_report_stays_chinese_for_a_user_who_chose_english(world, client, login_as):
    build_known_campaign(world)
    db.session.commit()
    login_as("bureau")
    client.post("/language/en", data={"next": "/"})
    assert "Sign out" in client.get("/").get_data(as_text=True)
    html = client.get("/dashboard/report?campaign=ZCR2026").get_data(as_text=True)
    assert "退出登录" in html and "Sign out" not in html  # force_locale("zh") reaches the template's strings


def test_a_render_finds_the_callables_bound_to_its_translations(app):
    """The context of every template render holds the bound callables (crm.i18n.register), not Flask-Babel's,
    which look the translations up again at each call."""
    with app.test_request_context("/"):
        context: dict = {}
        app.update_template_context(context)
        assert {k: context[k].__qualname__ for k in ("gettext", "ngettext", "_")} == {
            "gettext": "_template_gettext.<locals>.gettext", "ngettext": "_template_gettext.<locals>.ngettext",
            "_": "_template_gettext.<locals>.gettext"}


@pytest.mark.parametrize("autoescape", [True, False])
def test_a_string_is_formatted_as_flask_babels_whether_it_has_variables_or_not(app, autoescape):
    """Without variables and without a "%" the text is shown as it is; with a "%" it is %-formatted even without
    variables ("%%" shows "%"), as Jinja's newstyle gettext does."""
    src = "{{ _('Sign out') }}|{{ _('100%% sure') }}|{{ gettext('<b>') }}|{{ _('%(n)s%%', n='<i>') }}"
    original = app.jinja_env.autoescape
    with app.test_request_context("/"), force_locale("en"):
        app.jinja_env.autoescape = autoescape
        try:
            out = render_template_string(src)
        finally:
            app.jinja_env.autoescape = original
    assert out == ("Sign out|100% sure|<b>|&lt;i&gt;%" if autoescape else "Sign out|100% sure|<b>|<i>%")



def test_a_lazy_label_is_shown_in_the_locale_of_the_moment_as_flask_babels_is(app):
    """crm.i18n.lazy_gettext keeps the translations it found with the locale they are for: a ``force_locale`` in
    the middle of a request (the report, in Chinese) shows its labels in that locale, and the labels after it in
    the request's own again; with variables, before a locale is chosen and outside a request, as Flask-Babel's."""
    from flask_babel import lazy_gettext as babel_lazy

    from crm.i18n import lazy_gettext

    mine, theirs = lazy_gettext("Sign out"), babel_lazy("Sign out")
    with_vars = lazy_gettext("%(num)s record", num=2), babel_lazy("%(num)s record", num=2)
    assert str(mine) == str(theirs)  # outside a request (the fixture's application context: its locale)
    with app.test_request_context("/"):
        assert str(mine) == "退出登录"  # the first in the request chooses the locale
        with force_locale("en"):
            assert (str(mine), mine.__html__()) == ("Sign out", "Sign out")
            assert str(with_vars[0]) == str(with_vars[1])
        assert (str(mine), mine.__html__()) == ("退出登录", "退出登录")
        assert str(with_vars[0]) == str(with_vars[1]) and str(with_vars[0]) != "%(num)s record"
        assert render_template_string("{{ label }}", label=mine) == "退出登录"
        with force_locale("en"):
            assert render_template_string("{{ label }}|{{ _('Sign out') }}", label=mine) == "Sign out|Sign out"
        assert str(mine) == str(theirs)
    with app.app_context(), app.test_request_context("/"), force_locale("en"):
        assert str(mine) == "Sign out"  # another request, English from its first label
