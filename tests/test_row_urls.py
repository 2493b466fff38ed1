"""The URLs of a list's rows (crm.core.urls.row_url): built once a request with a placeholder id, each the very URL
that ``url_for`` gives, under a prefix the application is mounted at as well."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import url_for

from crm.core.urls import row_url

#: every (endpoint, value name) the templates call row_url with
USED = sorted({m for path in (Path(__file__).resolve().parents[1] / "templates").rglob("*.html")
               for m in re.findall(r"row_url\('([\w.]+)', (\w+)=", path.read_text(encoding="utf-8"))})


def test_the_templates_use_it():
    assert len(USED) >= 5 and ("firms.show", "firm_id") in USED


@pytest.mark.parametrize("script_root", ["", "/crm"])
@pytest.mark.parametrize("endpoint,key", USED)
def test_a_row_url_is_the_url_url_for_builds(app, endpoint, key, script_root):
    with app.test_request_context("/", base_url="http://localhost" + script_root + "/"):
        for ident in (1, 42, 7_919_191_919_191_919, 10 ** 15, 0):
            assert row_url(endpoint, **{key: ident}) == url_for(endpoint, **{key: ident})
        assert row_url(endpoint, **{key: 5}).startswith(script_root + "/")


def test_anything_else_is_url_for_s_own(app):
    with app.test_request_context("/"):
        assert row_url("firms.show", firm_id="12") == url_for("firms.show", firm_id="12")
        assert row_url("firms.show", firm_id=True) == url_for("firms.show", firm_id=True)
        assert row_url("firms.index") == url_for("firms.index")
        assert row_url("visits.followup_reassign", fu_id=3, next="/x") == url_for("visits.followup_reassign", fu_id=3,
                                                                                  next="/x")
        # a value that is a query parameter, not a path's: the same URL as well
        assert row_url("firms.index", after=77) == url_for("firms.index", after=77) == "/firms/?after=77"


def test_each_request_builds_its_own(app):
    with app.test_request_context("/", base_url="http://localhost/a/"):
        assert row_url("firms.show", firm_id=9) == "/a/firms/9"
    with app.test_request_context("/", base_url="http://localhost/b/"):
        assert row_url("firms.show", firm_id=9) == "/b/firms/9"


def test_outside_a_request_it_is_url_for_s_own(app):
    app.config["SERVER_NAME"] = "crm.example.cn"
    with app.app_context():
        assert row_url("firms.show", firm_id=9) == url_for("firms.show", firm_id=9) == "http://crm.example.cn/firms/9"
