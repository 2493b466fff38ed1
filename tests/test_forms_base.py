"""Every form refuses control characters in text (SECURITY.md IV-5): one rule in crm/core/forms.py, no form exempt."""
from __future__ import annotations

import importlib
import pkgutil

import pytest
import sqlalchemy as sa
from flask_wtf import FlaskForm

import crm
from crm.core.forms import Form
from crm.events import services as event_services
from crm.events.models import Registration
from crm.extensions import db
from crm.firms.models import Firm
from tests import factories
from tests import factories_events as fe
from tests.factories_firms import form_firm

MESSAGE = "包含无法保存的控制字符"


def _all_form_classes():
    for info in pkgutil.walk_packages(crm.__path__, "crm."):
        importlib.import_module(info.name)
    seen, todo = set(), [FlaskForm]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                todo.append(sub)
    return [c for c in seen if c.__module__.startswith("crm.")]


def test_every_form_of_the_app_derives_from_the_shared_base(app):
    forms = _all_form_classes()
    assert len(forms) > 20
    strays = sorted(f"{c.__module__}.{c.__qualname__}" for c in forms if not issubclass(c, Form))
    assert strays == []


@pytest.mark.parametrize("value", ["深圳\x00科技有限公司", "a\x01b", "x\x1by", "del\x7f"])
def test_a_control_character_in_a_firm_name_is_refused_in_chinese_and_nothing_is_written(world, login_as, value):
    client = login_as("rm_a")
    before = db.session.scalar(sa.select(sa.func.count(Firm.id)))
    resp = client.post("/firms/new", data=form_firm(value))
    assert resp.status_code == 422
    assert MESSAGE in resp.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(Firm.id))) == before


def test_tabs_and_line_breaks_stay_allowed_in_text(world, login_as):
    client = login_as("rm_a")
    resp = client.post("/firms/new", data=form_firm("深圳市换行\t科技有限公司"))
    assert resp.status_code == 302
    assert db.session.scalar(sa.select(Firm).where(Firm.name.like("深圳市换行%"))) is not None


def test_the_public_registration_page_refuses_a_nul_in_any_text_field(world, client):
    event = fe.event([world.bank_a], world.campaign, capacity=5)
    event_services.publish(event, world.rm_a)
    db.session.commit()
    code = factories.credit_code(4242)
    for field in ("person_name", "person_title", "firm_name", "need_summary"):
        data = {"person_name": "刘六", "person_title": "总经理", "mobile": "13733333333", "firm_name": "深圳市公开报名科技有限公司",
                "credit_code": code, "need_summary": "", "consent": "y"}
        data[field] = data[field] + "\x00=1"
        resp = client.post(f"/events/r/{event.public_token}", data=data)
        assert resp.status_code in (200, 422), field
        assert MESSAGE in resp.get_data(as_text=True), field
    assert db.session.scalar(sa.select(sa.func.count(Registration.id))) == 0


def test_every_select_renders_exactly_the_markup_of_wtforms_own_widget(app):
    """The base form swaps WTForms' select widget for a faster one (crm.core.forms.Select): the same markup for
    every kind of option (text to escape, selected, a boolean, an empty value, render_kw, groups, several)."""
    from wtforms import SelectField, SelectMultipleField, widgets
    from markupsafe import Markup
    from wtforms.validators import DataRequired
    from wtforms.fields.choices import SelectChoice

    choices = [("", "—"), ("1", "张三"), (2, '<b>"Ann" & Co</b>'), (True, "yes"), ("x", "", {"disabled": True}),
               ("<y>", None), ("sel", "Selected one")]

    class Probe(Form):
        plain = SelectField(choices=choices)
        picked = SelectField(choices=choices, default="sel")
        grouped = SelectField(choices=[SelectChoice("a", "A & a", optgroup="甲"), SelectChoice("b", "B", optgroup="乙"),
                                       SelectChoice("c", "<C>", optgroup="乙")], default="b")
        many = SelectMultipleField(choices=choices, default=["1", "sel"])
        #: (value, label) pairs only: the comprehension's path
        pairs = SelectField(choices=[("", "—"), ("7", '<i>"李" & 王</i>'), ("8", ""), (9, "九")], default="8")
        ints = SelectField(choices=[(1, "一"), (2, "<二>"), (3, None)], coerce=int, default=2,
                           validators=[DataRequired()])
        none_picked = SelectField(choices=[("a", "A"), ("b", "B")])
        #: a Markup value: escape() leaves it as it is; WTForms still escapes its quotes in the attribute
        marked = SelectField(choices=[(Markup('a"b'), "A"), ("c", "C")], default="c")
        marked_multi = SelectMultipleField(choices=[(Markup('x"y'), "X")])

    with app.test_request_context():
        form = Probe(meta={"csrf": False})
        fields = [form.plain, form.picked, form.grouped, form.many, form.pairs, form.ints, form.none_picked,
                  form.marked, form.marked_multi]
        assert all(type(f.widget) is crm.core.forms.Select for f in fields)
        fast = [str(f(class_="form-select")) for f in fields]
        for f in fields:
            f.widget = widgets.Select(multiple=f.widget.multiple)
        assert fast == [str(f(class_="form-select")) for f in fields]
    assert "selected value=\"sel\"" in fast[1] and "&lt;b&gt;&#34;Ann&#34; &amp; Co&lt;/b&gt;" in fast[0]
    assert '<option selected value="8">8</option>' in fast[4]
    assert "&lt;i&gt;&#34;李&#34; &amp; 王&lt;/i&gt;" in fast[4]
    assert '<option selected value="2">&lt;二&gt;</option>' in fast[5] and " required" in fast[5]
    assert "selected" not in fast[6]
    assert 'value="a&quot;b"' in fast[7] and 'value="x&quot;y"' in fast[8]
