"""Locale selection: the user's saved choice, then the session, then Chinese."""
from flask import current_app, has_request_context, session
from flask_login import current_user


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
