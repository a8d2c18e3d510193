"""Login, token checks, logout, API keys, expiry and revocation on the real sandbox."""

from __future__ import annotations

import re

import pytest
import requests

from circtoolkit import (
    AuthenticationError,
    BadRequestError,
    CircularoClient,
    ConfigurationError,
    NotFoundError,
    Sandbox,
    TokenExpiredError,
)
from circtoolkit.sandbox import ACCOUNTS, ORGANIZATIONS

from .conftest import ACME_ADMIN, GLOBAL_ADMIN, FakeClock

HOOK = "https://hooks.example/circularo"


def post_login(sandbox: Sandbox, **body: object) -> requests.Response:
    return requests.post(sandbox.url + "/login", json=body, timeout=5)


def test_login_answers_the_real_shape(sandbox: Sandbox) -> None:
    response = post_login(sandbox, name=ACME_ADMIN, password="sandbox", tenant="default",
                          returnToken=True)
    assert response.status_code == 200
    body = response.json()
    assert body["logged"] is True
    assert re.fullmatch(r"[A-Za-z0-9]{64}", body["token"])
    assert body["tenant"] == "default"
    assert "use_webhooks" in body["rights"]
    assert body["user"]["username"] == ACME_ADMIN
    assert body["user"]["organization"] == {"id": ORGANIZATIONS["Acme"], "name": "Acme"}


def test_login_without_return_token_hides_the_token(sandbox: Sandbox) -> None:
    body = post_login(sandbox, name=ACME_ADMIN, password="sandbox").json()
    assert body["logged"] is True
    assert "token" not in body


def test_tokens_are_fresh_and_random(sandbox: Sandbox) -> None:
    tokens = {sandbox.client(ACME_ADMIN).token for _ in range(5)}
    assert len(tokens) == 5


@pytest.mark.parametrize("account", ACCOUNTS, ids=lambda a: a.username)
def test_every_demo_account_logs_in_with_password_sandbox(sandbox: Sandbox, account) -> None:
    client = CircularoClient.login(sandbox.url, account.username, "sandbox")
    assert client.whoami()["user"]["username"] == account.username
    assert ("use_webhooks" in client.whoami()["rights"]) == (account.role != "user")


@pytest.mark.parametrize(
    ("name", "password", "tenant"),
    [(ACME_ADMIN, "Not-The-Password-42", None), ("nobody@acme.test", "sandbox", None),
     (ACME_ADMIN, "sandbox", "other-tenant"), (ACME_ADMIN, "", None)],
)
def test_wrong_credentials_get_401(sandbox: Sandbox, name: str, password: str,
                                   tenant: str | None) -> None:
    with pytest.raises(AuthenticationError) as info:
        CircularoClient.login(sandbox.url, name, password, tenant=tenant)
    assert info.value.status_code == 401
    assert info.value.code == "INVALID_CREDENTIALS"
    if password:
        assert password not in str(info.value)


@pytest.mark.parametrize(("body", "field"), [({"password": "sandbox"}, "name"),
                                             ({"name": ACME_ADMIN}, "password")])
def test_login_with_missing_fields_gets_400(sandbox: Sandbox, body: dict, field: str) -> None:
    response = requests.post(sandbox.url + "/login", json=body, timeout=5)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_get_login_checks_a_token(sandbox: Sandbox, acme: CircularoClient) -> None:
    answer = requests.get(sandbox.url + "/login",
                          params={"token": acme.token, "returnToken": "true"}, timeout=5).json()
    assert answer["logged"] is True
    assert answer["token"] == acme.token
    assert answer["user"]["username"] == ACME_ADMIN
    assert acme.whoami()["user"]["username"] == ACME_ADMIN
    assert "token" not in acme.whoami()


@pytest.mark.parametrize("token", [None, "", "x" * 64])
def test_missing_or_unknown_token_gets_401(sandbox: Sandbox, token: str | None) -> None:
    params = {} if token is None else {"token": token}
    response = requests.get(sandbox.url + "/webhooks", params=params, timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] in ("TOKEN_MISSING", "TOKEN_INVALID")
    assert response.json()["field"] == "token"


def test_logout_revokes_the_token(sandbox: Sandbox, acme: CircularoClient) -> None:
    token = acme.token
    other = sandbox.client(ACME_ADMIN)
    acme.logout()
    assert acme.token is None
    response = requests.get(sandbox.url + "/webhooks", params={"token": token}, timeout=5)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_INVALID"
    assert other.list_webhooks().total == 0  # other sessions live on
    with pytest.raises(ConfigurationError, match="no token"):
        acme.list_webhooks()


def test_session_tokens_expire_after_inactivity(sandbox: Sandbox, clock: FakeClock) -> None:
    client = sandbox.client(ACME_ADMIN)
    clock.advance(590)
    client.list_webhooks()  # a use inside the TTL slides the expiry
    clock.advance(590)
    client.list_webhooks()
    clock.advance(601)
    with pytest.raises(TokenExpiredError) as info:
        client.list_webhooks()
    assert info.value.status_code == 401
    assert info.value.code == "TOKEN_EXPIRED"
    assert isinstance(info.value, AuthenticationError)
    assert sandbox.client(ACME_ADMIN).list_webhooks().total == 0  # logging in again works


def test_api_keys_work_as_tokens_and_do_not_expire(sandbox: Sandbox, acme: CircularoClient,
                                                   clock: FakeClock) -> None:
    key = acme.create_api_key()
    assert re.fullmatch(r"[A-Za-z0-9]{48}", key.key)
    assert key.creator == ACME_ADMIN
    with CircularoClient(sandbox.url, token=key.key) as by_key:
        hook = by_key.create_webhook(HOOK)
        clock.advance(365 * 24 * 3600)
        assert [w.id for w in by_key.list_webhooks()] == [hook.id]
        with pytest.raises(TokenExpiredError):
            acme.list_webhooks()


def test_revoked_api_key_gets_401(sandbox: Sandbox, acme: CircularoClient) -> None:
    key = acme.create_api_key()
    by_key = CircularoClient(sandbox.url, token=key.key)
    by_key.list_webhooks()
    acme.revoke_api_key(key)
    with pytest.raises(AuthenticationError) as info:
        by_key.list_webhooks()
    assert info.value.code == "TOKEN_INVALID"
    with pytest.raises(NotFoundError):
        acme.revoke_api_key(key)


def test_only_the_owner_or_a_global_admin_revokes_a_key(sandbox: Sandbox) -> None:
    acme = sandbox.client(ACME_ADMIN)
    key = acme.create_api_key()
    with pytest.raises(NotFoundError):
        sandbox.client("admin@globex.test").revoke_api_key(key)
    sandbox.client(GLOBAL_ADMIN).revoke_api_key(key)
    with pytest.raises(AuthenticationError):
        CircularoClient(sandbox.url, token=key.key).whoami()


def test_an_api_key_cannot_log_out(sandbox: Sandbox, acme: CircularoClient) -> None:
    key = acme.create_api_key()
    with pytest.raises(BadRequestError) as info:
        CircularoClient(sandbox.url, token=key.key).logout()
    assert info.value.field == "token"
    CircularoClient(sandbox.url, token=key.key).whoami()


def test_revoke_url_is_redacted_in_errors(sandbox: Sandbox, acme: CircularoClient) -> None:
    key = acme.create_api_key()
    acme.revoke_api_key(key)
    with pytest.raises(NotFoundError) as info:
        acme.revoke_api_key(key.key)
    assert key.key not in str(info.value)
    assert key.key not in repr(info.value)
    assert key.key not in info.value.url
