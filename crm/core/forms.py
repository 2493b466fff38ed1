"""The base of every form (Flask-WTF with CSRF, plus the rules every text field shares) and the one save path of
every create/edit page (:func:`save_form`).

``Form`` refuses C0 control characters (NUL and the like; tab, line feed and carriage return are allowed) in any
field whose value is text, with a message in the user's language. PostgreSQL cannot store NUL in text at all, and
the other control characters have no business in a name, a summary or a remark (SECURITY.md IV-5). The rule lives
here, once, so a new form cannot forget it: every form in the app derives from ``Form``, and
``tests/test_forms_base.py`` fails when one does not.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Optional, TypeVar, Union

from flask import flash, redirect
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import Conflict
from wtforms import widgets
from wtforms.validators import StopValidation

from crm.core.edits import ACTION_CONFLICT_MESSAGE, CONFLICT_MESSAGE, DomainError, StaleEditError
from crm.extensions import db
from crm.i18n import lazy_gettext as _l

__all__ = ["Form", "Select", "CONTROL_CHARACTERS", "refuse_control_characters", "add_field_error", "show_error",
           "save_form", "perform", "conflict"]

T = TypeVar("T")

#: C0 controls except tab, line feed and carriage return, plus DEL
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def refuse_control_characters(form, field) -> None:
    """WTForms validator: stop with a clear message when a text value holds a control character."""
    values = field.data if isinstance(field.data, (list, tuple)) else [field.data]
    if any(isinstance(v, str) and CONTROL_CHARACTERS.search(v) for v in values):
        raise StopValidation(_l("Contains control characters that cannot be saved; please retype it."))


class Select(widgets.Select):
    """WTForms' ``<select>``, each plain option written by one f-string instead of ``html_params``: the same markup
    (``tests/test_forms_base.py`` compares them), in a fifth of the time. The firm page's owner select lists a
    bank's users (131 at scale 1): 2.5 ms of the page's 13 with WTForms' own options."""

    def __call__(self, field, **kwargs):
        """Choices given as a list of ``(value, label)`` pairs whose values are plain strings or integers (no groups,
        no attributes, one value; a ``Markup`` value, which ``escape`` leaves as it is, goes through WTForms, which
        also escapes its quotes): every option written by one comprehension, without building WTForms' choice objects
        (four calls an option). The firm page's owner select (131 users): about 0.3 of its 6 ms."""
        choices = field.choices
        if (self.multiple or type(choices) is not list
                or not all(type(c) is tuple and len(c) == 2 and type(c[0]) in (str, int) for c in choices)):
            return super().__call__(field, **kwargs)
        kwargs.setdefault("id", field.id)
        flags = getattr(field, "flags", {})
        for k in dir(flags):
            if k in self.validation_attrs and k not in kwargs:
                kwargs[k] = getattr(flags, k)
        coerce, data = field.coerce, field.data
        options = "".join(
            f'<option selected value="{escape(v)}">{escape(label or v)}</option>' if coerce(v) == data
            else f'<option value="{escape(v)}">{escape(label or v)}</option>' for v, label in choices)
        return Markup(f"<select {widgets.html_params(name=field.name, **kwargs)}>{options}</select>")

    @classmethod
    def render_option(cls, choice, **kwargs):
        value = choice.value
        if kwargs or choice.render_kw or type(value) not in (str, int):  # (bool, None, Markup: WTForms' own)
            return super().render_option(choice, **kwargs)
        label = escape(choice.label or value)
        if choice.selected:
            return Markup(f'<option selected value="{escape(value)}">{label}</option>')
        return Markup(f'<option value="{escape(value)}">{label}</option>')


class Form(FlaskForm):
    """FlaskForm with the shared text rules; derive every form from this class."""

    class Meta(FlaskForm.Meta):
        #: a form that stores nothing (sign-in) sets this False, so a hostile value still reaches the audit trail
        refuse_control_characters = True

        def bind_field(self, form, unbound_field, options):
            field = super().bind_field(form, unbound_field, options)
            if self.refuse_control_characters:
                field.validators = [refuse_control_characters, *field.validators]
            if type(field.widget) is widgets.Select:  # every select field's default widget: the faster one
                field.widget = Select(multiple=field.widget.multiple)
            return field


def add_field_error(form, field_name: Optional[str], message) -> None:
    """Show ``message`` under the form's field ``field_name``, or as a banner when the form has no such field."""
    field = getattr(form, field_name, None) if field_name else None
    if field is not None and hasattr(field, "errors"):
        field.errors = list(field.errors) + [message]
    else:
        flash(str(message), "danger")


def show_error(form, exc: DomainError) -> None:
    """The default way a refusal reaches the person: under its field, else as a banner."""
    add_field_error(form, getattr(exc, "field", None), str(exc))


def save_form(form, action: Callable[[], T], *, render: Callable[[int], Any], next_url: Callable[[T], str],
              saved: Union[str, Callable[[T], str], None] = None,
              show_error: Callable[[Any, DomainError], None] = show_error):
    """The one save path of every create and edit page.

    A GET or an invalid form renders (200, or 422 with the field errors). A valid one calls ``action`` (one
    service call that mutates and flushes), commits once, flashes ``saved`` and redirects to
    ``next_url(result)``. A refusal (:class:`DomainError`) rolls back and shows the message under its field
    (422). A stale edit (``StaleEditError`` from ``check_version``, or SQLAlchemy's ``StaleDataError`` when two
    saves race) rolls back and renders the form with the conflict message and status 409: what the person typed
    stays in the form so nothing they wrote is lost, and the stored record keeps the other person's change.
    """
    if not form.validate_on_submit():
        return render(422 if form.errors else 200)
    try:
        result = action()
        db.session.commit()
    except (StaleEditError, StaleDataError) as exc:
        db.session.rollback()
        flash(str(exc) if isinstance(exc, StaleEditError) else str(CONFLICT_MESSAGE), "danger")
        return render(409)
    except DomainError as exc:
        db.session.rollback()
        show_error(form, exc)
        return render(422)
    if saved:
        flash(saved(result) if callable(saved) else str(saved), "success")
    return redirect(next_url(result))


def conflict(message=None):
    """Answer 409 with a clear message (the error page); the other person's change stays as it is."""
    exc = Conflict(description=str(message or CONFLICT_MESSAGE))
    exc.user_message = True
    raise exc


def perform(action: Callable[[], T], *, saved: Union[str, Callable[[T], str], None], back: Callable[[], Any]):
    """The one path of a button (a POST without a page of its own: mark done, reassign, check in, ...).

    Calls ``action``, commits once, flashes ``saved`` and returns ``back()``. A refusal rolls back and flashes its
    message instead; a stale edit rolls back and answers 409 with the conflict message.
    """
    try:
        result = action()
        db.session.commit()
    except (StaleEditError, StaleDataError):
        db.session.rollback()
        conflict(ACTION_CONFLICT_MESSAGE)
    except DomainError as exc:
        db.session.rollback()
        flash(str(exc), "warning")
        return back()
    if saved:
        flash(saved(result) if callable(saved) else str(saved), "success")
    return back()
