"""The document workflow over HTTP: each step, its event, its errors (403, 404, 409)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from circtoolkit import (
    BadRequestError,
    CircularoClient,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    Sandbox,
)
from circtoolkit.sandbox import ORGANIZATIONS

from .conftest import ACME_ADMIN, FakeClock, emitted

BOB, CAROL, DAN = "bob@acme.test", "carol@acme.test", "dan@acme.test"


@pytest.fixture
def users(sandbox: Sandbox) -> dict[str, CircularoClient]:
    names = (ACME_ADMIN, BOB, CAROL, DAN, "admin@globex.test", "erin@globex.test")
    return {name: sandbox.client(name) for name in names}


def test_create_emits_document_created(sandbox: Sandbox, acme: CircularoClient) -> None:
    created = acme.create_document("NDA")
    assert created["status"] == "draft" and created["_version"] == 1
    document = acme.get_document(created["documentId"])
    assert document["owner"] == ACME_ADMIN
    assert document["organization"] == ORGANIZATIONS["Acme"]
    assert emitted(sandbox, created["documentId"]) == [("documentCreated", ACME_ADMIN)]


def test_signing_by_every_signer_completes(sandbox: Sandbox, users) -> None:
    owner, bob, carol = users[ACME_ADMIN], users[BOB], users[CAROL]
    document_id = owner.create_document("Contract", recipients=[BOB, CAROL])["documentId"]
    assert owner.get_document(document_id)["status"] == "pending"
    bob.sign_document(document_id)
    assert owner.get_document(document_id)["status"] == "pending"
    answer = carol.sign_document(document_id)
    assert answer["status"] == "completed"
    assert emitted(sandbox, document_id) == [
        ("documentCreated", ACME_ADMIN), ("signRequest", BOB), ("signRequest", CAROL),
        ("documentSigned", BOB), ("documentSigned", CAROL), ("documentCompleted", CAROL)]


def test_a_stale_version_gets_409(sandbox: Sandbox, users) -> None:
    owner, bob, carol = users[ACME_ADMIN], users[BOB], users[CAROL]
    document_id = owner.create_document("Contract", recipients=[BOB, CAROL])["documentId"]
    version = bob.get_document(document_id)["_version"]
    carol.sign_document(document_id)
    with pytest.raises(ConflictError) as info:
        bob.sign_document(document_id, version=version)
    assert info.value.status_code == 409
    assert info.value.code == "STALE_VERSION"
    assert info.value.field == "_version"
    bob.sign_document(document_id)  # reading again gives the current version
    assert owner.get_document(document_id)["status"] == "completed"
    with pytest.raises(ConflictError):
        owner.edit_document(document_id, "New title", version=1)


def test_who_has_no_business_gets_403(sandbox: Sandbox, users) -> None:
    owner, bob, dan = users[ACME_ADMIN], users[BOB], users[DAN]
    globex, erin = users["admin@globex.test"], users["erin@globex.test"]
    document_id = owner.create_document("Contract", recipients=[BOB])["documentId"]
    with pytest.raises(PermissionDeniedError):
        dan.sign_document(document_id)  # not asked to sign
    for outsider in (globex, erin):
        with pytest.raises(PermissionDeniedError):
            outsider.get_document(document_id)  # another organization
        with pytest.raises(PermissionDeniedError):
            outsider.document_action("sign", document_id, version=2)
    with pytest.raises(PermissionDeniedError):
        bob.delete_document(document_id)  # a signer does not manage the document
    with pytest.raises(PermissionDeniedError):
        bob.share_document(document_id, [DAN])
    assert emitted(sandbox, document_id)[-1] == ("signRequest", BOB)


def test_unknown_document_gets_404(acme: CircularoClient) -> None:
    with pytest.raises(NotFoundError):
        acme.get_document("no-such-document")
    with pytest.raises(NotFoundError):
        acme.document_action("sign", "no-such-document", version=1)


def test_reject_emits_sign_rejected_and_ends_the_workflow(sandbox: Sandbox, users) -> None:
    owner, bob, carol = users[ACME_ADMIN], users[BOB], users[CAROL]
    document_id = owner.create_document("Lease", recipients=[BOB, CAROL])["documentId"]
    answer = bob.document_action("reject", document_id)
    assert answer["status"] == "rejected"
    with pytest.raises(PermissionDeniedError):
        carol.sign_document(document_id)  # nothing left to sign
    assert emitted(sandbox, document_id)[-1] == ("signRejected", BOB)


def test_cancel_share_emits_sign_cancelled_for_each_pending(sandbox: Sandbox, users) -> None:
    owner, bob = users[ACME_ADMIN], users[BOB]
    document_id = owner.create_document("PO")["documentId"]
    share = owner.share_document(document_id, [BOB, CAROL, DAN])
    bob.sign_document(document_id)
    owner.cancel_share(share["shareId"])
    assert owner.get_document(document_id)["status"] == "cancelled"
    assert emitted(sandbox, document_id)[-2:] == [("signCancelled", CAROL),
                                                  ("signCancelled", DAN)]
    with pytest.raises(NotFoundError):
        owner.cancel_share("no-such-share")


def test_delegate_moves_the_request(sandbox: Sandbox, users) -> None:
    owner, bob, dan = users[ACME_ADMIN], users[BOB], users[DAN]
    document_id = owner.create_document("Invoice", recipients=[BOB])["documentId"]
    bob.document_action("delegate", document_id, to=DAN)
    with pytest.raises(PermissionDeniedError):
        bob.sign_document(document_id)
    assert dan.sign_document(document_id)["status"] == "completed"
    assert emitted(sandbox, document_id)[2:] == [
        ("signDelegated", BOB), ("signRequest", DAN), ("documentSigned", DAN),
        ("documentCompleted", DAN)]
    other = owner.create_document("Other", recipients=[BOB])["documentId"]
    with pytest.raises(BadRequestError) as info:
        bob.document_action("delegate", other, to="nobody@acme.test")
    assert info.value.field == "to"


@pytest.mark.parametrize("purpose", ["approve", "review", "accept"])
def test_simple_actions_emit_document_simple_action_executed(sandbox: Sandbox, users,
                                                              purpose: str) -> None:
    owner, carol = users[ACME_ADMIN], users[CAROL]
    document_id = owner.create_document("Expense report")["documentId"]
    owner.share_document(document_id, [CAROL], purpose=purpose)
    carol.document_action(purpose, document_id)
    assert emitted(sandbox, document_id) == [("documentCreated", ACME_ADMIN),
                                             ("documentSimpleActionExecuted", CAROL)]


def test_edit_and_delete(sandbox: Sandbox, acme: CircularoClient) -> None:
    document_id = acme.create_document("Draft")["documentId"]
    assert acme.edit_document(document_id, "Final")["_version"] == 2
    assert acme.get_document(document_id)["title"] == "Final"
    acme.delete_document(document_id)
    with pytest.raises(NotFoundError):
        acme.get_document(document_id)
    assert emitted(sandbox, document_id) == [("documentCreated", ACME_ADMIN),
                                             ("documentEdited", ACME_ADMIN),
                                             ("documentDeleted", ACME_ADMIN)]


def test_sign_requests_expire_after_valid_until(sandbox: Sandbox, users,
                                                clock: FakeClock) -> None:
    owner, bob = users[ACME_ADMIN], users[BOB]
    document_id = owner.create_document("Offer")["documentId"]
    deadline = datetime.fromtimestamp(clock.now, UTC) + timedelta(hours=1)
    owner.share_document(document_id, [BOB, CAROL], valid_until=deadline.isoformat())
    bob.sign_document(document_id)
    clock.advance(1800)
    assert sandbox.expire_due() == 0
    clock.advance(1801)
    sandbox.expire_due()  # the engine's own sweep may have been first: either is fine
    assert sandbox.expire_due() == 0
    owner = sandbox.client(ACME_ADMIN)  # the old session expired meanwhile
    assert owner.get_document(document_id)["status"] == "expired"
    assert emitted(sandbox, document_id)[-1] == ("signExpired", CAROL)
    expired_at = sandbox.events()["timestamp"].iloc[-1]
    assert expired_at == deadline.replace(microsecond=deadline.microsecond // 1000 * 1000)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"documentId": "x", "sharePurpose": "sign", "recipients": []}, "recipients"),
     ({"documentId": "x", "sharePurpose": "sign", "recipients": ["ghost@acme.test"]},
      "recipients"),
     ({"documentId": "x", "sharePurpose": "print", "recipients": [BOB]}, "sharePurpose"),
     ({"sharePurpose": "sign", "recipients": [BOB]}, "documentId"),
     ({"documentId": "x", "sharePurpose": "sign", "recipients": [BOB],
       "validUntil": "yesterday"}, "validUntil"),
     ({"documentId": "x", "sharePurpose": "sign", "recipients": [BOB],
       "validUntil": "2001-01-01T00:00:00Z"}, "validUntil")],
)
def test_invalid_shares_get_400(acme: CircularoClient, body: dict, field: str) -> None:
    document_id = acme.create_document("Doc")["documentId"]
    if body.get("documentId") == "x":
        body = {**body, "documentId": document_id}
    with pytest.raises(BadRequestError) as info:
        acme._request("POST", "/share", json_body=body)
    assert info.value.field == field


def test_a_closed_document_cannot_be_shared_again(acme: CircularoClient, users) -> None:
    document_id = acme.create_document("Doc", recipients=[BOB])["documentId"]
    users[BOB].sign_document(document_id)
    with pytest.raises(ConflictError) as info:
        acme.share_document(document_id, [CAROL])
    assert info.value.code == "INVALID_STATE"


def test_an_api_call_does_not_wait_for_callbacks(clock: FakeClock) -> None:
    """The API answers while the callback it caused is still being handled."""
    import threading

    from circtoolkit.sandbox.receiver import Receiver

    gate = threading.Event()
    with Receiver(hold=gate) as held, Sandbox(clock=clock) as sandbox:
        client = sandbox.client(ACME_ADMIN)
        client.create_webhook(held.url)
        document_id = client.create_document("Quick")["documentId"]
        held.wait_for(1, timeout=10)  # the callback arrived and is not answered yet...
        assert client.get_document(document_id)["status"] == "draft"  # ...the API answers
        pending = sandbox.deliveries(attempts=False)
        assert pending["state"].tolist() == ["pending"] and pending["attempts"].tolist() == [0]
        gate.set()
        sandbox.wait_for_deliveries(timeout=10)
        assert sandbox.deliveries(attempts=False)["state"].tolist() == ["delivered"]
