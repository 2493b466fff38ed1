"""Sign-in, sign-out, sessions and safe redirects."""
import pytest

from crm.auth.models import User
from crm.extensions import db
from tests.conftest import TEST_PASSWORD, login


def test_home_requires_login(client, world):
    resp = client.get("/")
    assert resp.status_code == 302
    assert "/login" in resp.headers["Location"]


def test_login_page_is_chinese_by_default(client):
    body = client.get("/login").get_data(as_text=True)
    assert "登录" in body
    assert 'lang="zh-CN"' in body


def test_login_then_home_shows_name(client, world):
    resp = login(client, "rm_a")
    assert resp.status_code == 302
    body = client.get("/").get_data(as_text=True)
    assert "李经理" in body


@pytest.mark.parametrize("username,password", [("rm_a", "wrong-password-1"), ("nobody", TEST_PASSWORD)])
def test_login_failure_gives_one_message_for_unknown_user_and_wrong_password(client, world, username, password):
    resp = login(client, username, password)
    assert resp.status_code == 200
    assert "用户名或密码错误" in resp.get_data(as_text=True)


def test_username_lookalikes_sign_in_to_the_same_account(client, world):
    assert login(client, "  RM_A").status_code == 302


def test_logout_is_post_only_and_ends_the_session(client, world):
    login(client, "rm_a")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 302
    assert client.get("/").status_code == 302


def test_replaying_a_session_cookie_after_logout_fails(app, world):
    c1 = app.test_client()
    login(c1, "rm_a")
    cookie = c1.get_cookie("session")
    assert cookie is not None
    c1.post("/logout")
    c2 = app.test_client()
    c2.set_cookie("session", cookie.value)
    assert c2.get("/").status_code == 302


def test_deactivation_ends_live_sessions(client, world):
    from crm.auth import services

    login(client, "rm_a")
    assert client.get("/").status_code == 200
    services.set_active(db.session.get(User, world.rm_a.id), False)
    db.session.commit()
    assert client.get("/").status_code == 302


BAD_NEXT = [
    "http://example.com", "http:///example.com", "https://example.com", "ftp://example.com", "///example.com",
    "//example.com", 'javascript:alert("XSS")', "\\\\\\example.com", "/\\example.com", "https:example.com",
    " //example.com", "%2F%2Fexample.com",
]


@pytest.mark.parametrize("target", BAD_NEXT)
def test_login_never_redirects_off_site(client, world, target):
    resp = client.post("/login", data={"username": "rm_a", "password": TEST_PASSWORD, "next": target})
    assert resp.status_code == 302
    loc = resp.headers["Location"]
    assert "example.com" not in loc
    assert loc.endswith("/")


def test_login_follows_a_safe_next(client, world):
    resp = client.post("/login", data={"username": "rm_a", "password": TEST_PASSWORD,
                                       "next": "/view/?param=http://example.com"})
    assert resp.headers["Location"] == "/view/?param=http://example.com"


def test_language_switch_is_remembered_for_the_user(client, world):
    login(client, "rm_a")
    client.post("/language/en", data={"next": "/"})
    assert db.session.get(User, world.rm_a.id).locale == "en"
    assert "Sign out" in client.get("/").get_data(as_text=True)


def test_password_change_requires_current_and_rotates_sessions(app, world):
    c1, c2 = app.test_client(), app.test_client()
    login(c1, "rm_a")
    login(c2, "rm_a")
    bad = c1.post("/password", data={"current": "nope", "new": "Another-Long-Phrase-9", "confirm": "Another-Long-Phrase-9"})
    assert "当前密码错误" in bad.get_data(as_text=True)
    ok = c1.post("/password", data={"current": TEST_PASSWORD, "new": "Another-Long-Phrase-9",
                                    "confirm": "Another-Long-Phrase-9"})
    assert ok.status_code == 302
    assert c1.get("/").status_code == 200  # this session continues
    assert c2.get("/").status_code == 302  # the other one ended


def test_production_hash_method_is_scrypt_n_2_17():
    from config import Config

    assert Config.PASSWORD_HASH_METHOD == "scrypt:131072:8:1"


def test_old_hash_is_upgraded_on_sign_in(client, world):
    from werkzeug.security import generate_password_hash

    u = db.session.get(User, world.rm_a.id)
    u.password_hash = generate_password_hash(TEST_PASSWORD, method="pbkdf2:sha256:500")
    db.session.commit()
    login(client, "rm_a")
    assert db.session.get(User, world.rm_a.id).password_hash.startswith("pbkdf2:sha256:1000$")


# -- AU-2: common passwords (a pinned frequency list of 30,000, NFKC and case variants) ------------------------

def _listed(min_length=8):
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return [w for w in FREQUENCY_LISTS["passwords"] if len(w) >= min_length]


def test_the_common_password_list_holds_over_3000_entries_that_fit_the_length_rule():
    from crm.auth import passwords

    listed = passwords.common_passwords()
    fitting = {w for w in listed if len(w) >= passwords.MIN_LENGTH}
    assert len(fitting) >= 3000
    assert set(_listed()[:3000]) <= listed  # the frequency list's top 3,000 of policy length, not a hand-typed few
    assert {"woaini1314", "5201314520", "qq123456"} <= listed  # and the Chinese favourites


@pytest.mark.parametrize("rank", [0, 999, 2999, 6000, -1])
def test_a_listed_password_is_refused_with_a_clear_chinese_message(client, world, rank):
    pw = _listed()[rank]
    login(client, "rm_a")
    resp = client.post("/password", data={"current": TEST_PASSWORD, "new": pw, "confirm": pw})
    assert resp.status_code in (200, 422)
    assert "该密码过于常见，请换一个。" in resp.get_data(as_text=True)
    assert login(client.application.test_client(), "rm_a", pw).status_code == 200  # still the old password


@pytest.mark.parametrize("variant", ["PASSWORD1", "SunShine", "iLoveYou", "Ｐａｓｓｗｏｒｄ１", "ｑｗｅｒｔｙ１２３",
                                     "TRUSTNO1 ", "Ｍｅｒｃｅｄｅｓ"])
def test_case_width_and_space_variants_of_a_listed_password_are_refused(app, variant):
    from crm.auth import passwords

    with app.test_request_context(headers={"Accept-Language": "zh-CN"}):
        with pytest.raises(passwords.PasswordPolicyError) as exc:
            passwords.check_policy(variant, username="someone")
    assert str(exc.value) == "该密码过于常见，请换一个。"


@pytest.mark.parametrize("pw", [TEST_PASSWORD, "Another-Long-Phrase-9", "龙岗企业走访记录本2026", "mercedes-river-lamp"])
def test_passwords_that_are_not_listed_are_accepted(app, pw):
    from crm.auth import passwords

    with app.test_request_context():
        passwords.check_policy(pw, username="someone")
