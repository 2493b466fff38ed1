"""Each role signs in, lands home without console errors or failed requests, and signs out."""
import pytest

from tests.e2e.conftest import sign_in, sign_out

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("size", ["desktop", "phone"])
@pytest.mark.parametrize("username", ["rm_a", "mgr_a", "bureau", "admin"])
def test_each_role_signs_in_and_out_cleanly(request, live_server, live_world, size, username):
    p = request.getfixturevalue("page" if size == "desktop" else "phone_page")
    sign_in(p, live_server.url, username)
    assert p.locator("h1").first.is_visible()
    width = p.evaluate("document.documentElement.scrollWidth")
    assert width <= p.viewport_size["width"], f"page scrolls sideways: {width}px"
    sign_out(p, live_server.url)
    assert p.problems == []
