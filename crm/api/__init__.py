"""Api blueprint (``/api/v1``, bearer tokens only) and the personal-token pages (``/profile/tokens``)."""
from flask import Blueprint

bp = Blueprint("api", __name__)
#: the signed-in user's token pages: cookie sessions, HTML, CSRF-protected forms
tokens_bp = Blueprint("tokens", __name__)


def _register_token_pages(state) -> None:
    state.app.register_blueprint(tokens_bp, url_prefix="/profile")


bp.record_once(_register_token_pages)

from crm.api import views  # noqa: E402,F401
from crm.api import token_views  # noqa: E402,F401
