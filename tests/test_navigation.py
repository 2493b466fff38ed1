"""The navigation bar: each role's entries, in the user's language, the current page marked; written once per role,
language and page and kept (crm/core/navigation.py), so a kept bar must never be another role's, language's or
page's."""
from __future__ import annotations

import re

import pytest

EXPECTED = {  # (path, Chinese label) of each role's bar, in order
    "rm_a": ["/", "/firms/", "/visits/new", "/visits/followups/mine", "/visits/", "/events/", "/credit/", "/imports/",
             "/dashboard/", "/dashboard/targets"],
    "mgr_a": ["/", "/firms/", "/visits/new", "/visits/followups/mine", "/visits/", "/visits/followups/overdue",
              "/events/", "/credit/", "/imports/", "/dashboard/", "/dashboard/targets", "/admin/users"],
    "bureau": ["/", "/firms/", "/visits/", "/events/", "/credit/", "/dashboard/", "/dashboard/targets",
               "/admin/campaigns"],
}


def bar(html: str) -> list[tuple[str, bool, str]]:
    """(href, marked as the current page, label) of each link of the main bar."""
    block = html[html.index('<ul class="navbar-nav me-auto">'):]
    block = block[:block.index("</ul>")]
    return [(href, bool(active), re.sub(r"<[^>]+>", "", label).strip())
            for active, href, label in re.findall(
                r'<a class="nav-link( active)?" href="([^"]+)"[^>]*>(.*?)</a>', block, flags=re.S)]


@pytest.mark.parametrize("user", sorted(EXPECTED))
def test_each_role_sees_its_entries_with_the_current_page_marked_in_its_language(world, client, login_as, user):
    login_as(user)
    for path in ("/", "/firms/", "/dashboard/"):
        links = bar(client.get(path).get_data(as_text=True))
        assert [href for href, _, _ in links] == EXPECTED[user]
        assert [href for href, active, _ in links if active] == [path]
    zh = [label for _, _, label in bar(client.get("/firms/").get_data(as_text=True))]
    assert zh[0] == "首页" and all(re.search(r"[\u4e00-\u9fff]", label) for label in zh)
    client.post("/language/en", data={"next": "/"})
    en = bar(client.get("/firms/").get_data(as_text=True))
    assert [label for _, _, label in en][:2] == ["Home", "Firms"] and len(en) == len(zh)
    assert not any(re.search(r"[\u4e00-\u9fff]", label) for _, _, label in en)
    assert [href for href, active, _ in en if active] == ["/firms/"]


def test_a_kept_bar_is_never_another_roles(world, client, login_as):
    login_as("mgr_a")
    assert "/admin/users" in [href for href, _, _ in bar(client.get("/firms/").get_data(as_text=True))]
    login_as("rm_a")
    hrefs = [href for href, _, _ in bar(client.get("/firms/").get_data(as_text=True))]
    assert hrefs == EXPECTED["rm_a"] and "/admin/users" not in hrefs
