"""Locale selection (the user's saved choice, then the session, then Chinese), the templates' translated strings and
the lazily translated labels of forms and code lists (``lazy_gettext``)."""
import flask_babel
from flask import current_app, g, has_request_context, session
from flask_babel import get_translations
from flask_babel.speaklater import LazyString
from flask_login import current_user
from jinja2 import pass_eval_context
from markupsafe import Markup


def select_locale() -> str:
    """Simplified Chinese unless the user (or this browser session) chose English."""
    langs = current_app.config["LANGUAGES"]
    if not has_request_context():
        return current_app.config.get("CLI_LOCALE", "zh")  # command line: Chinese unless configured
    if current_user and getattr(current_user, "is_authenticated", False) and current_user.locale in langs:
        return current_user.locale
    chosen = session.get("locale")
    if chosen in langs:
        return chosen
    return "zh"


def select_timezone() -> str:
    return current_app.config["BABEL_DEFAULT_TIMEZONE"]


def _template_gettext(translations):
    """``gettext`` and ``ngettext`` for one template render, bound to the request's translations.

    They behave as Jinja's newstyle callables that Flask-Babel installs on the environment (the string is marked
    safe when autoescaping, then always %-formatted with the keyword arguments), but those look the translations
    up again through Flask's context locals at every call: about 50 calls on the firm page, 0.2 of its 6 ms.
    """
    ugettext, ungettext = translations.ugettext, translations.ungettext

    @pass_eval_context
    def gettext(eval_ctx, string, /, **variables):  # positional-only: any keyword is the string's variable
        rv = ugettext(string)
        if not variables and "%" not in rv:  # %-formatting would give the same text: skip its 2 µs
            return Markup(rv) if eval_ctx.autoescape else rv
        return (Markup(rv) if eval_ctx.autoescape else rv) % variables

    @pass_eval_context
    def ngettext(eval_ctx, singular, plural, num, /, **variables):
        variables.setdefault("num", num)
        rv = ungettext(singular, plural, num)
        return (Markup(rv) if eval_ctx.autoescape else rv) % variables

    # ``_`` as well: Jinja's own ``_`` (the i18n extension's alias) calls the context's ``gettext`` through a second
    # Context.call, about 3 µs more for each of the page's strings
    return {"gettext": gettext, "ngettext": ngettext, "_": gettext}


def register(app) -> None:
    """Templates rendered in a request resolve ``_``/``gettext``/``ngettext`` from their context, which a context
    processor fills with callables bound to the translations of the moment (``force_locale`` included, since the
    processors run inside ``render_template``). Macros imported without context still find Flask-Babel's
    callables on the environment: the same strings, looked up the slower way."""

    @app.context_processor
    def _translations():
        return _template_gettext(get_translations())


class LazyText(LazyString):
    """Flask-Babel's lazy string (the same translation, when it is shown, in the locale of that moment), cheaper to
    show: a list page shows one per row and column (an event's kind and status, an application's stage), about 200
    on the events list, where Flask-Babel's look-up of the translations through Flask's context locals at every one
    cost a sixth of the page.

    The translations are remembered on Flask-Babel's own per-request state together with the locale they are for,
    and looked up again whenever that locale object changes (``force_locale`` sets another one and puts the first
    back). Before the request's locale is chosen, and outside a request, Flask-Babel's path chooses it as before.
    """

    def __init__(self, string: str, **variables):
        super().__init__(flask_babel.gettext, string, **variables)

    def __str__(self) -> str:
        state = g.get("_flask_babel") if g else None  # what flask_babel keeps per request (babel_locale, ...)
        locale = getattr(state, "babel_locale", None)
        if locale is None:
            return super().__str__()
        held = getattr(state, "crm_translations", None)
        if held is None or held[0] is not locale:
            held = state.crm_translations = (locale, get_translations())
        text = held[1].ugettext(self._args[0])
        return text % self._kwargs if self._kwargs else text

    def __html__(self) -> str:
        return self.__str__()


def lazy_gettext(string: str, **variables) -> LazyText:
    """Like :func:`flask_babel.lazy_gettext` (which the catalogue's extraction knows by this name and by ``_l``)."""
    return LazyText(string, **variables)
