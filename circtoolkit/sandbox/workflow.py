"""Documents and their signing workflow, each step emitting the event Circularo sends.

A simplified subset of the real API: create, share for signing (or approval, review,
acceptance), sign, reject, delegate, cancel a share, edit, delete, and expiry of sign
requests past their ``validUntil``. Every change bumps the document's ``_version``; a
step that names a stale version gets 409, a caller with no business in the step 403.

Who is the ``actor`` of an event: whoever acted (created, edited, deleted, signed,
rejected, delegated, executed a simple action; for documentCompleted, the last signer),
and for events about one recipient's request (signRequest, signExpired, signCancelled),
that recipient.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from ..models import EVENT_TYPES, format_epoch, parse_timestamp
from .delivery import Outbox
from .state import (
    ACCOUNTS_BY_NAME,
    ORGANIZATIONS,
    TENANT,
    USE_WEBHOOKS,
    Account,
    ApiProblem,
    SandboxState,
)

__all__ = ["ACTIONS", "PURPOSES", "Workflow"]

PURPOSES = ("sign", "approve", "review", "accept")
# action in PUT /documents/<action>/<version> -> the purpose of the request it answers
ACTIONS = {"sign": "sign", "reject": "sign", "delegate": "sign", "approve": "approve",
           "review": "review", "accept": "accept"}
MAX_TITLE = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    id              TEXT PRIMARY KEY,
    title           TEXT NOT NULL,
    owner           TEXT NOT NULL,
    organization_id TEXT,
    tenant          TEXT NOT NULL,
    status          TEXT NOT NULL,
    version         INTEGER NOT NULL,
    created         REAL NOT NULL,
    updated         REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id          TEXT PRIMARY KEY,
    share_id    TEXT NOT NULL,
    document_id TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    purpose     TEXT NOT NULL,
    status      TEXT NOT NULL,
    valid_until REAL,
    created     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_by_document ON requests (document_id);
CREATE INDEX IF NOT EXISTS requests_by_share ON requests (share_id);
CREATE INDEX IF NOT EXISTS requests_expiring ON requests (valid_until)
    WHERE status = 'pending' AND valid_until IS NOT NULL;
"""

_CLOSED_DOCUMENT = ("completed", "rejected", "expired", "cancelled")


class Workflow:
    """The document workflow over the sandbox's state; events go through ``outbox``."""

    def __init__(self, state: SandboxState, outbox: Outbox) -> None:
        self.state = state
        self.outbox = outbox
        self._sweeps_paused = 0
        with state.lock:
            state.db.executescript(_SCHEMA)

    # -- helpers ---------------------------------------------------------------------

    def _now(self, at: float | None) -> float:
        return self.state.clock() if at is None else at

    def _emit(self, document: Any, event: str, actor: str, at: float) -> dict[str, Any]:
        return self.outbox.emit(document_id=document["id"], event=event, actor=actor, at=at,
                                organization_id=document["organization_id"],
                                tenant=document["tenant"])

    def _document(self, document_id: Any) -> Any:
        if not isinstance(document_id, str) or not document_id:
            raise ApiProblem(400, "MISSING_FIELD", "documentId is required", "documentId")
        row = self.state.db.execute("SELECT * FROM documents WHERE id = ?",
                                    (document_id,)).fetchone()
        if row is None or row["status"] == "deleted":
            raise ApiProblem(404, "NOT_FOUND", f"no document with id '{document_id}'",
                             "documentId")
        return row

    @staticmethod
    def _manages(account: Account, document: Any) -> bool:
        return (account.username == document["owner"] or account.role == "global_admin"
                or (account.role == "org_admin"
                    and account.organization_id == document["organization_id"]))

    def _require_manager(self, account: Account, document: Any, what: str) -> None:
        if not self._manages(account, document):
            raise ApiProblem(403, "FORBIDDEN", f"only the document's owner or an administrator "
                                               f"may {what} it")

    def _require_version(self, document: Any, version: Any) -> None:
        if version is None:  # internal callers (simulate) act on the current version
            return
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise ApiProblem(400, "INVALID_FIELD", "the version must be an integer",
                             "_version") from None
        if number != document["version"]:
            raise ApiProblem(409, "STALE_VERSION",
                             f"the document is at _version {document['version']}, not {number}:"
                             " read it again", "_version")

    def _bump(self, document: Any, at: float, status: str | None = None) -> None:
        self.state.db.execute(
            "UPDATE documents SET version = version + 1, updated = ?, status = COALESCE(?, status)"
            " WHERE id = ?", (at, status, document["id"]))

    @staticmethod
    def _recipients(value: Any) -> list[str]:
        if (not isinstance(value, list) or not value
                or not all(isinstance(name, str) for name in value)):
            raise ApiProblem(400, "INVALID_FIELD", "recipients must be a non-empty list of "
                                                   "user names", "recipients")
        unknown = [name for name in value if name not in ACCOUNTS_BY_NAME]
        if unknown:
            raise ApiProblem(400, "INVALID_FIELD", f"unknown recipient(s): {', '.join(unknown)}",
                             "recipients")
        return list(dict.fromkeys(value))

    # -- reading ---------------------------------------------------------------------

    def get(self, account: Account, document_id: Any) -> dict[str, Any]:
        """The document's state with ``_version``; 403 for another organization's."""
        with self.state.lock:
            document = self._document(document_id)
            requests = self.state.db.execute(
                "SELECT * FROM requests WHERE document_id = ? ORDER BY created, rowid",
                (document["id"],)).fetchall()
        involved = any(r["recipient"] == account.username for r in requests)
        same_org = (account.organization_id is not None
                    and account.organization_id == document["organization_id"])
        if not (self._manages(account, document) or involved or same_org):
            raise ApiProblem(403, "FORBIDDEN", "this document belongs to another organization")
        return self._to_api(document, requests)

    @staticmethod
    def _to_api(document: Any, requests: Sequence[Any]) -> dict[str, Any]:
        return {
            "documentId": document["id"],
            "title": document["title"],
            "owner": document["owner"],
            "organization": document["organization_id"],
            "status": document["status"],
            "_version": document["version"],
            "createDate": format_epoch(document["created"]),
            "updateDate": format_epoch(document["updated"]),
            "requests": [{"shareId": r["share_id"], "recipient": r["recipient"],
                          "purpose": r["purpose"], "status": r["status"],
                          "validUntil": format_epoch(r["valid_until"]) if r["valid_until"] else None}
                         for r in requests],
        }

    # -- steps -----------------------------------------------------------------------

    def create(self, account: Account, title: Any, recipients: Any = None,
               at: float | None = None) -> dict[str, Any]:
        """POST /documents: documentCreated; with recipients, also a share for signing."""
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
            raise ApiProblem(400, "INVALID_FIELD",
                             f"title must be a non-empty string of at most {MAX_TITLE} characters",
                             "title")
        names = self._recipients(recipients) if recipients is not None else None
        at = self._now(at)
        document_id = str(uuid.uuid4())
        with self.state.transaction() as db:
            db.execute("INSERT INTO documents VALUES (?, ?, ?, ?, ?, 'draft', 1, ?, ?)",
                       (document_id, title, account.username, account.organization_id, TENANT,
                        at, at))
            document = self._document(document_id)
            self._emit(document, "documentCreated", account.username, at)
            if names:
                self.share(account, document_id, "sign", names, at=at)
            document = self._document(document_id)
        return {"results": [{"documentId": document_id, "title": title,
                             "status": document["status"], "_version": document["version"]}]}

    def share(self, account: Account, document_id: Any, purpose: Any, recipients: Any,
              valid_until: Any = None, at: float | None = None) -> dict[str, Any]:
        """POST /share: one request per recipient; signRequest for each when signing."""
        if purpose not in PURPOSES:
            raise ApiProblem(400, "INVALID_FIELD",
                             f"sharePurpose must be one of {', '.join(PURPOSES)}", "sharePurpose")
        names = self._recipients(recipients)
        at = self._now(at)
        deadline = None
        if valid_until is not None:
            try:
                deadline = parse_timestamp(valid_until).timestamp()
            except (TypeError, ValueError, AttributeError):
                raise ApiProblem(400, "INVALID_FIELD", "validUntil must be an ISO 8601 timestamp",
                                 "validUntil") from None
            if deadline <= at:
                raise ApiProblem(400, "INVALID_FIELD", "validUntil must be in the future",
                                 "validUntil")
        share_id = secrets.token_hex(10)
        with self.state.transaction() as db:
            document = self._document(document_id)
            self._require_manager(account, document, "share")
            if document["status"] in _CLOSED_DOCUMENT:
                raise ApiProblem(409, "INVALID_STATE",
                                 f"the document is {document['status']}", "documentId")
            db.executemany("INSERT INTO requests VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)",
                           [(secrets.token_hex(10), share_id, document["id"], name, purpose,
                             deadline, at) for name in names])
            self._bump(document, at, "pending" if purpose == "sign" else None)
            if purpose == "sign":
                for name in names:
                    self._emit(document, "signRequest", name, at)
        return {"shareId": share_id, "documentId": document["id"], "sharePurpose": purpose,
                "recipients": names, "validUntil": format_epoch(deadline) if deadline else None}

    def cancel_share(self, account: Account, share_id: str, at: float | None = None
                     ) -> dict[str, Any]:
        """DELETE /share/<id>: its pending requests end; signCancelled for each."""
        at = self._now(at)
        with self.state.transaction() as db:
            rows = db.execute("SELECT * FROM requests WHERE share_id = ?", (share_id,)).fetchall()
            if not rows:
                raise ApiProblem(404, "NOT_FOUND", f"no share with id '{share_id}'", "shareId")
            document = self._document(rows[0]["document_id"])
            self._require_manager(account, document, "cancel a share of")
            pending = [r for r in rows if r["status"] == "pending"]
            if not pending:
                raise ApiProblem(409, "INVALID_STATE", "nothing left to cancel in this share",
                                 "shareId")
            db.execute("UPDATE requests SET status = 'cancelled' WHERE share_id = ? AND"
                       " status = 'pending'", (share_id,))
            still = db.execute("SELECT COUNT(*) FROM requests WHERE document_id = ? AND"
                               " purpose = 'sign' AND status = 'pending'",
                               (document["id"],)).fetchone()[0]
            self._bump(document, at, "cancelled" if document["status"] == "pending" and not still
                       else None)
            for request in pending:
                if request["purpose"] == "sign":
                    self._emit(document, "signCancelled", request["recipient"], at)
        return {"status": "SUCCESS", "cancelled": len(pending)}

    def act(self, account: Account, action: str, version: Any, document_id: Any, *,
            to: Any = None, at: float | None = None) -> dict[str, Any]:
        """PUT /documents/<action>/<version>: sign, reject, delegate, approve, review, accept."""
        purpose = ACTIONS.get(action)
        if purpose is None:
            raise ApiProblem(404, "NOT_FOUND", f"unknown document action '{action}'")
        at = self._now(at)
        with self.state.transaction() as db:
            document = self._document(document_id)
            request = db.execute(
                "SELECT * FROM requests WHERE document_id = ? AND recipient = ? AND purpose = ?"
                " AND status = 'pending' ORDER BY created LIMIT 1",
                (document["id"], account.username, purpose)).fetchone()
            if request is None:
                raise ApiProblem(403, "FORBIDDEN", f"{account.username} has no pending request to "
                                                   f"{purpose} this document")
            self._require_version(document, version)
            if action == "sign":
                self._sign(document, request, account, at)
            elif action == "reject":
                db.execute("UPDATE requests SET status = 'rejected' WHERE id = ?", (request["id"],))
                db.execute("UPDATE requests SET status = 'closed' WHERE document_id = ? AND"
                           " purpose = 'sign' AND status = 'pending'", (document["id"],))
                self._bump(document, at, "rejected")
                self._emit(document, "signRejected", account.username, at)
            elif action == "delegate":
                self._delegate(document, request, account, to, at)
            else:
                db.execute("UPDATE requests SET status = 'done' WHERE id = ?", (request["id"],))
                self._bump(document, at)
                self._emit(document, "documentSimpleActionExecuted", account.username, at)
            document = self._document(document["id"])
        return {"documentId": document["id"], "status": document["status"],
                "_version": document["version"]}

    def _sign(self, document: Any, request: Any, account: Account, at: float) -> None:
        db = self.state.db
        db.execute("UPDATE requests SET status = 'signed' WHERE id = ?", (request["id"],))
        still = db.execute("SELECT COUNT(*) FROM requests WHERE document_id = ? AND"
                           " purpose = 'sign' AND status = 'pending'",
                           (document["id"],)).fetchone()[0]
        self._bump(document, at, None if still else "completed")
        self._emit(document, "documentSigned", account.username, at)
        if not still:
            self._emit(document, "documentCompleted", account.username, at)

    def _delegate(self, document: Any, request: Any, account: Account, to: Any,
                  at: float) -> None:
        if not isinstance(to, str) or to not in ACCOUNTS_BY_NAME:
            raise ApiProblem(400, "INVALID_FIELD", "to must name a user to delegate to", "to")
        if to == account.username:
            raise ApiProblem(400, "INVALID_FIELD", "cannot delegate to yourself", "to")
        db = self.state.db
        taken = db.execute("SELECT 1 FROM requests WHERE document_id = ? AND recipient = ? AND"
                           " purpose = 'sign' AND status = 'pending'",
                           (document["id"], to)).fetchone()
        if taken:
            raise ApiProblem(400, "INVALID_FIELD", f"{to} is already asked to sign", "to")
        db.execute("UPDATE requests SET status = 'delegated' WHERE id = ?", (request["id"],))
        db.execute("INSERT INTO requests VALUES (?, ?, ?, ?, 'sign', 'pending', ?, ?)",
                   (secrets.token_hex(10), request["share_id"], document["id"], to,
                    request["valid_until"], at))
        self._bump(document, at)
        self._emit(document, "signDelegated", account.username, at)
        self._emit(document, "signRequest", to, at)

    def edit(self, account: Account, document_id: Any, title: Any, version: Any,
             at: float | None = None) -> dict[str, Any]:
        """PUT /documents/<id>: change the title; documentEdited."""
        if not isinstance(title, str) or not title.strip() or len(title) > MAX_TITLE:
            raise ApiProblem(400, "INVALID_FIELD",
                             f"title must be a non-empty string of at most {MAX_TITLE} characters",
                             "title")
        at = self._now(at)
        with self.state.transaction() as db:
            document = self._document(document_id)
            self._require_manager(account, document, "edit")
            self._require_version(document, version)
            if document["status"] in _CLOSED_DOCUMENT:
                raise ApiProblem(409, "INVALID_STATE", f"the document is {document['status']}",
                                 "documentId")
            db.execute("UPDATE documents SET title = ? WHERE id = ?", (title, document["id"]))
            self._bump(document, at)
            self._emit(document, "documentEdited", account.username, at)
            document = self._document(document["id"])
        return {"documentId": document["id"], "status": document["status"],
                "_version": document["version"]}

    def delete(self, account: Account, document_id: Any, at: float | None = None
               ) -> dict[str, Any]:
        """DELETE /documents/<id>: documentDeleted; the document is gone (404) afterwards."""
        at = self._now(at)
        with self.state.transaction() as db:
            document = self._document(document_id)
            self._require_manager(account, document, "delete")
            db.execute("UPDATE requests SET status = 'closed' WHERE document_id = ? AND"
                       " status = 'pending'", (document["id"],))
            self._bump(document, at, "deleted")
            self._emit(document, "documentDeleted", account.username, at)
        return {"status": "SUCCESS"}

    def pause_sweeps(self) -> None:
        """Make ``sweep()`` a no-op until ``resume_sweeps()`` (a simulation expires its
        own documents on its own clock)."""
        with self.state.lock:
            self._sweeps_paused += 1

    def resume_sweeps(self) -> None:
        with self.state.lock:
            self._sweeps_paused -= 1

    def sweep(self) -> int:
        """Expire what is due by the sandbox's clock, unless a simulation is running."""
        with self.state.lock:
            return 0 if self._sweeps_paused else self.expire_due()

    def expire_due(self, at: float | None = None, document_id: str | None = None) -> int:
        """Expire every pending request past its ``validUntil`` (of one document, or of
        all): signExpired for each."""
        at = self._now(at)
        only = "" if document_id is None else " AND document_id = ?"
        params = (at,) if document_id is None else (at, document_id)
        with self.state.transaction() as db:
            rows = db.execute("SELECT * FROM requests WHERE status = 'pending' AND"
                              f" valid_until IS NOT NULL AND valid_until <= ?{only}"
                              " ORDER BY valid_until, rowid", params).fetchall()
            for request in rows:
                document = db.execute("SELECT * FROM documents WHERE id = ?",
                                      (request["document_id"],)).fetchone()
                db.execute("UPDATE requests SET status = 'expired' WHERE id = ?", (request["id"],))
                if request["purpose"] != "sign":
                    continue
                moment = max(request["valid_until"], document["updated"])
                if document["status"] == "pending":
                    self._bump(document, moment, "expired")
                self._emit(document, "signExpired", request["recipient"], moment)
        return len(rows)

    # -- trigger ---------------------------------------------------------------------

    def trigger(self, account: Account, event: Any, organization: Any = None,
                document_id: Any = None, actor: Any = None, at: float | None = None
                ) -> dict[str, Any]:
        """Emit one event straight into the delivery path (``stripe trigger`` style)."""
        if USE_WEBHOOKS not in account.rights:
            raise ApiProblem(403, "FORBIDDEN", f"the right '{USE_WEBHOOKS}' is required")
        if event not in EVENT_TYPES:
            raise ApiProblem(400, "INVALID_FIELD",
                             f"event must be one of {', '.join(EVENT_TYPES)}", "event")
        if organization is None:
            org_id = account.organization_id
        else:
            org_id = next((oid for name, oid in ORGANIZATIONS.items()
                           if organization in (name, oid)), None)
            if org_id is None:
                raise ApiProblem(400, "INVALID_FIELD", f"unknown organization '{organization}'",
                                 "organization")
        if account.role != "global_admin" and org_id != account.organization_id:
            raise ApiProblem(400, "INVALID_FIELD", "organization admins can only trigger events "
                                                   "of their own organization", "organization")
        for name, value in (("documentId", document_id), ("actor", actor)):
            if value is not None and (not isinstance(value, str) or not value):
                raise ApiProblem(400, "INVALID_FIELD", f"{name} must be a non-empty string", name)
        at = self._now(at)
        with self.state.transaction():
            return self.outbox.emit(document_id=document_id or str(uuid.uuid4()), event=event,
                                    actor=actor or account.username, at=at,
                                    organization_id=org_id)
