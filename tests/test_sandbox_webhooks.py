"""The sandbox's webhook API: the seed's shapes, scope rules and every error path."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests

from circtoolkit import (
    BadRequestError,
    CircularoClient,
    NotFoundError,
    PermissionDeniedError,
    Sandbox,
    Webhook,
)
from circtoolkit.sandbox import ORGANIZATIONS, TENANT

ACME_ID = ORGANIZATIONS["Acme"]
GLOBEX_ID = ORGANIZATIONS["Globex"]
HOOK = "https://hooks.example/circularo"
ERROR_KEYS = {"status", "code", "message", "field"}


def raw(sandbox: Sandbox, method: str, path: str, token: str | None, **kwargs: object
        ) -> requests.Response:
    params = {"token": token} if token else {}
    return requests.request(method, sandbox.url + path, params=params, timeout=5, **kwargs)


def assert_error(response: requests.Response, status: int, code: str, field: str | None
                 ) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["status"] == "ERROR"
    assert body["code"] == code
    assert body["field"] == field
    assert body["message"]


# -- the seed's shapes ---------------------------------------------------------------

def test_create_answers_the_seed_shape(sandbox: Sandbox, acme: CircularoClient) -> None:
    response = raw(sandbox, "POST", "/webhooks", acme.token,
                   json={"type": "organization", "callbackUrl": HOOK, "hmacSecret": "Gh1!f5dFs0dA"})
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["id", "creator", "createDate", "type", "name", "callbackUrl",
                          "hmacSecret"]
    assert re.fullmatch(r"[A-Za-z0-9]{20}", body["id"])
    assert body["creator"] == "admin@acme.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", body["createDate"])
    assert body["type"] == "organization"
    assert body["name"] == ACME_ID
    assert body["callbackUrl"] == HOOK
    assert body["hmacSecret"] == "Gh1!f5dFs0dA"


def test_create_date_comes_from_the_clock(acme: CircularoClient, clock) -> None:
    webhook = acme.create_webhook(HOOK)
    assert webhook.create_date == datetime.fromtimestamp(clock.now, UTC).replace(
        microsecond=webhook.create_date.microsecond)
    assert abs(webhook.create_date.timestamp() - clock.now) < 0.001


def test_list_and_delete_answer_the_seed_shapes(sandbox: Sandbox, acme: CircularoClient) -> None:
    first = acme.create_webhook(HOOK, hmac_secret="one")
    second = acme.create_webhook(HOOK + "/2")
    listed = raw(sandbox, "GET", "/webhooks", acme.token).json()
    assert set(listed) == {"total", "results"}
    assert listed["total"] == 2
    assert [item["id"] for item in listed["results"]] == [first.id, second.id]
    assert "hmacSecret" not in listed["results"][1]
    deleted = raw(sandbox, "DELETE", f"/webhooks/{first.id}", acme.token)
    assert deleted.status_code == 200
    assert deleted.json() == {"status": "SUCCESS"}
    assert [w.id for w in acme.list_webhooks()] == [second.id]


def test_ids_are_unique(acme: CircularoClient) -> None:
    ids = {acme.create_webhook(HOOK).id for _ in range(50)}
    assert len(ids) == 50


# -- scope rules ---------------------------------------------------------------------

def test_org_admin_creates_for_own_organization_only(acme: CircularoClient) -> None:
    assert acme.create_webhook(HOOK).name == ACME_ID
    assert acme.create_webhook(HOOK, name="Acme").name == ACME_ID
    assert acme.create_webhook(HOOK, name=ACME_ID).name == ACME_ID
    with pytest.raises(BadRequestError) as info:
        acme.create_webhook(HOOK, name="Globex")
    assert info.value.status_code == 400
    assert info.value.field == "name"


def test_org_admin_cannot_create_tenant_webhooks(acme: CircularoClient) -> None:
    with pytest.raises(BadRequestError) as info:
        acme.create_webhook(HOOK, type="tenant")
    assert info.value.field == "type"
    assert info.value.code == "INVALID_FIELD"


def test_org_admins_see_only_their_organization(
    acme: CircularoClient, globex: CircularoClient, admin: CircularoClient
) -> None:
    acme_hook = acme.create_webhook(HOOK + "/acme")
    globex_hook = globex.create_webhook(HOOK + "/globex")
    tenant_hook = admin.create_webhook(HOOK + "/tenant", type="tenant")
    for_acme = admin.create_webhook(HOOK + "/by-admin", name="Acme")
    assert [w.id for w in acme.list_webhooks()] == [acme_hook.id, for_acme.id]
    assert [w.id for w in globex.list_webhooks()] == [globex_hook.id]
    everything = admin.list_webhooks()
    assert everything.total == 4
    assert [w.id for w in everything] == [acme_hook.id, globex_hook.id, tenant_hook.id,
                                          for_acme.id]


def test_global_admin_creates_tenant_and_organization_webhooks(admin: CircularoClient) -> None:
    tenant = admin.create_webhook(HOOK, type="tenant")
    assert (tenant.type, tenant.name) == ("tenant", TENANT)
    by_name = admin.create_webhook(HOOK, name="Globex")
    by_id = admin.create_webhook(HOOK, name=GLOBEX_ID)
    assert by_name.type == by_id.type == "organization"
    assert by_name.name == by_id.name == GLOBEX_ID


def test_global_admin_must_name_a_known_organization(admin: CircularoClient) -> None:
    with pytest.raises(BadRequestError) as missing:
        admin.create_webhook(HOOK)
    assert (missing.value.code, missing.value.field) == ("MISSING_FIELD", "name")
    with pytest.raises(BadRequestError) as unknown:
        admin.create_webhook(HOOK, name="Initech")
    assert (unknown.value.code, unknown.value.field) == ("INVALID_FIELD", "name")
    with pytest.raises(BadRequestError) as tenant_name:
        admin.create_webhook(HOOK, type="tenant", name="Acme")
    assert tenant_name.value.field == "name"


def test_hmac_secret_is_shown_to_its_creator_only(
    acme: CircularoClient, admin: CircularoClient
) -> None:
    by_acme = acme.create_webhook(HOOK, hmac_secret="acme-secret")
    by_admin = admin.create_webhook(HOOK, name="Acme", hmac_secret="admin-secret")
    seen_by_acme = {w.id: w.hmac_secret for w in acme.list_webhooks()}
    seen_by_admin = {w.id: w.hmac_secret for w in admin.list_webhooks()}
    assert seen_by_acme == {by_acme.id: "acme-secret", by_admin.id: None}
    assert seen_by_admin == {by_acme.id: None, by_admin.id: "admin-secret"}


def test_user_without_use_webhooks_gets_403(sandbox: Sandbox, signer: CircularoClient,
                                            acme: CircularoClient) -> None:
    hook = acme.create_webhook(HOOK)
    for call in (lambda: signer.create_webhook(HOOK), signer.list_webhooks,
                 lambda: signer.delete_webhook(hook.id)):
        with pytest.raises(PermissionDeniedError) as info:
            call()
        assert info.value.status_code == 403
        assert "use_webhooks" in str(info.value)
    assert_error(raw(sandbox, "GET", "/webhooks", signer.token), 403, "FORBIDDEN", None)
    assert len(acme.list_webhooks()) == 1


def test_unknown_or_invisible_webhook_gets_404(acme: CircularoClient, globex: CircularoClient,
                                               admin: CircularoClient) -> None:
    hook = globex.create_webhook(HOOK)
    tenant_hook = admin.create_webhook(HOOK, type="tenant")
    for webhook_id in ("doesNotExist12345678", hook.id, tenant_hook.id):
        with pytest.raises(NotFoundError) as info:
            acme.delete_webhook(webhook_id)
        assert info.value.status_code == 404
        assert info.value.field == "webhookId"
    assert globex.list_webhooks()[0].id == hook.id
    admin.delete_webhook(hook.id)  # the global admin sees, and may delete, everything
    assert len(globex.list_webhooks()) == 0


def test_deleting_twice_gets_404(acme: CircularoClient) -> None:
    hook = acme.create_webhook(HOOK)
    acme.delete_webhook(hook)
    with pytest.raises(NotFoundError):
        acme.delete_webhook(hook)


# -- invalid input -------------------------------------------------------------------

@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"type": "organization"}, "MISSING_FIELD", "callbackUrl"),
        ({"type": "organization", "callbackUrl": "ftp://files.example/x"}, "INVALID_FIELD",
         "callbackUrl"),
        ({"type": "organization", "callbackUrl": "not a url"}, "INVALID_FIELD", "callbackUrl"),
        ({"type": "organization", "callbackUrl": "https://"}, "INVALID_FIELD", "callbackUrl"),
        ({"type": "organization", "callbackUrl": 42}, "INVALID_FIELD", "callbackUrl"),
        ({"type": "organization", "callbackUrl": "https://x.example/" + "a" * 2100},
         "INVALID_FIELD", "callbackUrl"),
        ({"callbackUrl": HOOK}, "MISSING_FIELD", "type"),
        ({"type": "document", "callbackUrl": HOOK}, "INVALID_FIELD", "type"),
        ({"type": "organization", "callbackUrl": HOOK, "hmacSecret": ""}, "INVALID_FIELD",
         "hmacSecret"),
        ({"type": "organization", "callbackUrl": HOOK, "hmacSecret": 123}, "INVALID_FIELD",
         "hmacSecret"),
        ({"type": "organization", "callbackUrl": HOOK, "name": ["Acme"]}, "INVALID_FIELD",
         "name"),
        ([{"type": "organization", "callbackUrl": HOOK}], "INVALID_JSON", "body"),
    ],
)
def test_invalid_create_bodies_get_400_naming_the_field(
    sandbox: Sandbox, acme: CircularoClient, body: object, code: str, field: str
) -> None:
    assert_error(raw(sandbox, "POST", "/webhooks", acme.token, json=body), 400, code, field)
    assert acme.list_webhooks().total == 0


@pytest.mark.parametrize("data", [b"", b"{not json", b'{"type": "organization",', b"\xff\xfe"])
def test_a_body_that_is_not_json_gets_400(sandbox: Sandbox, acme: CircularoClient,
                                          data: bytes) -> None:
    response = raw(sandbox, "POST", "/webhooks", acme.token, data=data,
                   headers={"Content-Type": "application/json"})
    assert_error(response, 400, "INVALID_JSON", "body")


def test_an_oversized_body_gets_413(sandbox: Sandbox, acme: CircularoClient) -> None:
    response = raw(sandbox, "POST", "/webhooks", acme.token,
                   json={"type": "organization", "callbackUrl": HOOK, "pad": "x" * 1_100_000})
    assert_error(response, 413, "PAYLOAD_TOO_LARGE", "body")


def test_client_error_carries_status_and_parsed_body(acme: CircularoClient) -> None:
    with pytest.raises(BadRequestError) as info:
        acme.create_webhook("mailto:someone@example.com")
    error = info.value
    assert isinstance(error, requests.RequestException)
    assert isinstance(error, requests.HTTPError)
    assert error.status_code == 400
    assert error.body == {"status": "ERROR", "code": "INVALID_FIELD", "field": "callbackUrl",
                          "message": error.api_message}
    assert error.response is not None and error.response.status_code == 400
    assert "callbackUrl" in str(error)


def test_unknown_endpoint_and_wrong_method_use_the_error_format(
    sandbox: Sandbox, acme: CircularoClient
) -> None:
    assert_error(raw(sandbox, "GET", "/nothing-here", acme.token), 404, "NOT_FOUND", None)
    assert_error(raw(sandbox, "PATCH", "/webhooks", acme.token), 405, "METHOD_NOT_ALLOWED", None)


def test_webhook_model_round_trips(acme: CircularoClient) -> None:
    hook = acme.create_webhook(HOOK, hmac_secret="s")
    assert Webhook.from_api(hook.to_api()) == hook
