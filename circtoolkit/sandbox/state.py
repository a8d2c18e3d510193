"""The sandbox's state in SQLite: demo accounts, sessions and API keys, webhooks.

In memory by default, or in a file that a restarted sandbox reopens with everything in
it. Tokens and API keys are stored as SHA-256 hashes, never as themselves. Every
public method either returns API-shaped data or raises :class:`ApiProblem`, which the
app turns into the one documented error body.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..errors import CircularoError
from ..models import WEBHOOK_TYPES, format_epoch

__all__ = [
    "ACCOUNTS",
    "ACCOUNTS_BY_NAME",
    "DEMO_PASSWORD",
    "ORGANIZATIONS",
    "TENANT",
    "Account",
    "ApiProblem",
    "HookTarget",
    "Principal",
    "SandboxState",
    "TransactionParticipant",
]

TENANT = "default"
DEMO_PASSWORD = "sandbox"  # noqa: S105 - the documented password of the offline demo accounts
USE_WEBHOOKS = "use_webhooks"
_ID_ALPHABET = string.ascii_letters + string.digits
_NAMESPACE = uuid.UUID("6f1c2d7e-5b7a-4c55-9a53-7f0b6f8c1e21")
MAX_URL_LENGTH = 2048
MAX_SECRET_LENGTH = 256
SLIDING_WRITE_INTERVAL = 1.0


class ApiProblem(CircularoError):
    """Sandbox-internal: an error answer to send, as ``{"status": "ERROR", ...}``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        """The documented error body."""
        return {"status": "ERROR", "code": self.code, "message": self.message,
                "field": self.field}


def organization_id(name: str) -> str:
    """The stable id of a demo organization (a UUID, like the seed's ``name``)."""
    return str(uuid.uuid5(_NAMESPACE, f"{TENANT}/{name}"))


ORGANIZATIONS: dict[str, str] = {name: organization_id(name) for name in ("Acme", "Globex")}


@dataclass(frozen=True, slots=True)
class Account:
    """A fixed demo account."""

    username: str
    display_name: str
    role: str  # "global_admin" | "org_admin" | "user"
    organization: str | None
    rights: tuple[str, ...]

    @property
    def organization_id(self) -> str | None:
        return ORGANIZATIONS[self.organization] if self.organization else None

    def describe(self) -> str:
        where = f"organization {self.organization}" if self.organization else f"tenant {TENANT}"
        role = {"global_admin": "global admin", "org_admin": "organization admin",
                "user": "user"}[self.role]
        extra = "" if USE_WEBHOOKS in self.rights else f", without {USE_WEBHOOKS}"
        return f"{role} of {where}{extra}"

    def to_api(self) -> dict[str, Any]:
        organization = (
            {"id": self.organization_id, "name": self.organization} if self.organization else None
        )
        return {"username": self.username, "name": self.display_name, "role": self.role,
                "tenant": TENANT, "organization": organization}


ACCOUNTS: tuple[Account, ...] = (
    Account("global-admin@sandbox.test", "Gloria Global", "global_admin", None,
            (USE_WEBHOOKS, "manage_tenant")),
    Account("admin@acme.test", "Alice Acme", "org_admin", "Acme",
            (USE_WEBHOOKS, "manage_organization")),
    Account("admin@globex.test", "Gustav Globex", "org_admin", "Globex",
            (USE_WEBHOOKS, "manage_organization")),
    Account("signer@acme.test", "Sam Signer", "user", "Acme", ()),
    # more signers, for the document workflow and simulations
    Account("bob@acme.test", "Bob Baker", "user", "Acme", ()),
    Account("carol@acme.test", "Carol Chen", "user", "Acme", ()),
    Account("dan@acme.test", "Dan Duarte", "user", "Acme", ()),
    Account("signer@globex.test", "Sid Signer", "user", "Globex", ()),
    Account("erin@globex.test", "Erin Ekström", "user", "Globex", ()),
    Account("frank@globex.test", "Frank Fofana", "user", "Globex", ()),
)
ACCOUNTS_BY_NAME: dict[str, Account] = {account.username: account for account in ACCOUNTS}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the account and the kind of token (``session`` or ``apikey``)."""

    account: Account
    token_kind: str
    token_hash: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _random_id(length: int) -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    username   TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('session', 'apikey')),
    created    REAL NOT NULL,
    last_used  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    creator         TEXT NOT NULL,
    create_date     TEXT NOT NULL,
    type            TEXT NOT NULL,
    name            TEXT NOT NULL,
    organization_id TEXT,
    tenant          TEXT NOT NULL,
    callback_url    TEXT NOT NULL,
    hmac_secret     TEXT,
    disabled_at     REAL
);
"""


@dataclass(frozen=True, slots=True)
class HookTarget:
    """What the delivery path needs of a live webhook (kept in memory, in step with SQL)."""

    id: str
    type: str
    organization_id: str | None
    tenant: str
    callback_url: str
    hmac_secret: str | None

    def covers(self, organization_id: str | None, tenant: str) -> bool:
        """Whether this webhook's scope covers a document of this organization/tenant."""
        if self.type == "tenant":
            return self.tenant == tenant
        return organization_id is not None and self.organization_id == organization_id


class TransactionParticipant(Protocol):
    """Something that keeps in-memory work in step with the database's transactions."""

    def mark(self) -> object:
        """A mark of the current state, taken at BEGIN or SAVEPOINT."""

    def rollback(self, mark: object) -> None:
        """Undo what was done since ``mark``."""

    def commit(self) -> None:
        """The outermost transaction committed: act on what was done."""


class SandboxState:
    """Accounts, tokens and webhooks of one sandbox, in one SQLite database.

    ``transaction()`` nests (savepoints inside the outermost transaction) and keeps its
    participants in step, so that deliveries enter the engine only when their rows are
    committed, and never when they were rolled back.
    """

    def __init__(self, db: str | Path | None = None, *, token_ttl: float = 3600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = str(db) if db is not None else ":memory:"
        self.token_ttl = token_ttl
        self.clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row["name"] for row in self._db.execute("PRAGMA table_info(webhooks)")}
        if "disabled_at" not in columns:  # a database written by circtoolkit 0.1.0
            self._db.execute("ALTER TABLE webhooks ADD COLUMN disabled_at REAL")
        self._depth = 0
        self._participants: list[TransactionParticipant] = []
        self.webhook_removed: list[Callable[[str], None]] = []
        self.hooks: dict[str, HookTarget] = {
            row["id"]: _hook_target(row)
            for row in self._db.execute("SELECT * FROM webhooks WHERE disabled_at IS NULL")
        }

    @property
    def db(self) -> sqlite3.Connection:
        """The connection; hold ``lock`` (or be inside ``transaction()``) to use it."""
        return self._db

    @property
    def lock(self) -> threading.RLock:
        return self._lock

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit; nested calls become savepoints of the outer transaction.

        Participants (see ``join``) are told of each savepoint, rollback and commit, so
        that what they keep in memory (the outbox's staged deliveries) follows the data.
        """
        with self._lock:
            outermost = self._depth == 0
            savepoint = f"sp{self._depth}"
            self._db.execute("BEGIN IMMEDIATE" if outermost else f"SAVEPOINT {savepoint}")
            marks = [participant.mark() for participant in self._participants]
            self._depth += 1
            try:
                yield self._db
                if outermost:
                    self._db.execute("COMMIT")
                else:
                    self._db.execute(f"RELEASE {savepoint}")
            except BaseException:
                try:
                    if outermost:
                        if self._db.in_transaction:  # SQLite may have rolled back itself
                            self._db.execute("ROLLBACK")
                    else:
                        self._db.execute(f"ROLLBACK TO {savepoint}")
                        self._db.execute(f"RELEASE {savepoint}")
                finally:
                    for participant, mark in zip(self._participants, marks, strict=True):
                        participant.rollback(mark)
                raise
            finally:
                self._depth -= 1
            if outermost:  # still under the lock: nothing can stage in between
                for participant in self._participants:
                    participant.commit()

    def join(self, participant: TransactionParticipant) -> None:
        """Have ``participant`` follow every transaction's savepoints and outcome."""
        self._participants.append(participant)

    def disable_webhook(self, webhook_id: str) -> bool:
        """Stop calling a webhook (its endpoint answered 410 Gone); False if already gone."""
        with self.transaction() as db:
            changed = db.execute("UPDATE webhooks SET disabled_at = ? WHERE id = ? AND"
                                 " disabled_at IS NULL", (self.clock(), webhook_id)).rowcount
            self.hooks.pop(webhook_id, None)
        self._removed(webhook_id)
        return bool(changed)

    def _removed(self, webhook_id: str) -> None:
        for callback in self.webhook_removed:
            callback(webhook_id)

    # -- sessions and keys -----------------------------------------------------------

    def login(self, name: Any, password: Any, tenant: Any = None) -> tuple[str, Account]:
        """Check credentials and open a session; the token is returned once, never stored."""
        if not isinstance(name, str) or not name:
            raise ApiProblem(400, "MISSING_FIELD", "name is required", "name")
        if not isinstance(password, str):
            raise ApiProblem(400, "MISSING_FIELD", "password is required", "password")
        if tenant is not None and not isinstance(tenant, str):
            raise ApiProblem(400, "INVALID_FIELD", "tenant must be a string", "tenant")
        account = ACCOUNTS_BY_NAME.get(name)
        password_ok = hmac.compare_digest(_hash(password), _hash(DEMO_PASSWORD))
        if account is None or not password_ok or tenant not in (None, TENANT):
            raise ApiProblem(401, "INVALID_CREDENTIALS", "wrong name, password or tenant")
        return self._issue(account, "session", 64), account

    def _issue(self, account: Account, kind: str, length: int) -> str:
        token = _random_id(length)
        now = self.clock()
        with self.transaction() as db:
            db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
                       (_hash(token), account.username, kind, now, now))
        return token

    def authenticate(self, token: str | None) -> Principal:
        """The principal behind a token; 401 for a missing, unknown, revoked or expired one.

        Session tokens expire ``token_ttl`` seconds after their last use (sliding);
        API keys last until revoked.
        """
        if not token:
            raise ApiProblem(401, "TOKEN_MISSING",
                             "this call needs a token: pass ?token=... from POST /login", "token")
        token_hash = _hash(token)
        now = self.clock()
        with self._lock:
            row = self._db.execute(
                "SELECT username, kind, last_used FROM tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone()
            if row is None or row["username"] not in ACCOUNTS_BY_NAME:
                raise ApiProblem(401, "TOKEN_INVALID", "the token is unknown or was revoked",
                                 "token")
            if row["kind"] == "session":
                if now - row["last_used"] > self.token_ttl:
                    raise ApiProblem(401, "TOKEN_EXPIRED",
                                     "the token expired: log in again with POST /login", "token")
                if now - row["last_used"] > SLIDING_WRITE_INTERVAL:
                    self._db.execute("UPDATE tokens SET last_used = ? WHERE token_hash = ?",
                                     (now, token_hash))
        return Principal(ACCOUNTS_BY_NAME[row["username"]], row["kind"], token_hash)

    def logout(self, principal: Principal) -> None:
        """End a session token."""
        if principal.token_kind != "session":  # noqa: S105 - a kind, not a secret
            raise ApiProblem(400, "INVALID_FIELD",
                             "API keys are not logged out: revoke them with DELETE /api/key/<key>",
                             "token")
        with self.transaction() as db:
            db.execute("DELETE FROM tokens WHERE token_hash = ?", (principal.token_hash,))

    def create_api_key(self, principal: Principal) -> dict[str, Any]:
        """A new long-lived key for the caller: ``{"id": key, "creator", "createDate"}``."""
        key = self._issue(principal.account, "apikey", 48)
        return {"id": key, "creator": principal.account.username,
                "createDate": self._now_text()}

    def revoke_api_key(self, principal: Principal, key: str) -> None:
        """Revoke one of the caller's keys (a global admin may revoke any); else 404."""
        with self.transaction() as db:
            row = db.execute("SELECT username FROM tokens WHERE token_hash = ? AND kind = 'apikey'",
                             (_hash(key),)).fetchone()
            mine = row is not None and (row["username"] == principal.account.username
                                        or principal.account.role == "global_admin")
            if not mine:
                raise ApiProblem(404, "NOT_FOUND", "no such API key", "key")
            db.execute("DELETE FROM tokens WHERE token_hash = ?", (_hash(key),))

    # -- webhooks ------------------------------------------------------------------------

    def _require_webhooks_right(self, principal: Principal) -> Account:
        if USE_WEBHOOKS not in principal.account.rights:
            raise ApiProblem(403, "FORBIDDEN", f"the right '{USE_WEBHOOKS}' is required")
        return principal.account

    def create_webhook(self, principal: Principal, body: Any) -> dict[str, Any]:
        """Validate a ``POST /webhooks`` body against the caller's scope and store it."""
        account = self._require_webhooks_right(principal)
        if not isinstance(body, Mapping):
            raise ApiProblem(400, "INVALID_JSON", "the body must be a JSON object", "body")
        callback_url = _validated_callback_url(body.get("callbackUrl"))
        hook_type = body.get("type")
        if hook_type is None:
            raise ApiProblem(400, "MISSING_FIELD", "type is required", "type")
        if hook_type not in WEBHOOK_TYPES:
            raise ApiProblem(400, "INVALID_FIELD",
                             f"type must be one of {', '.join(WEBHOOK_TYPES)}", "type")
        secret = body.get("hmacSecret")
        if secret is not None and (not isinstance(secret, str) or not secret
                                   or len(secret) > MAX_SECRET_LENGTH):
            raise ApiProblem(400, "INVALID_FIELD",
                             f"hmacSecret must be a non-empty string of at most "
                             f"{MAX_SECRET_LENGTH} characters", "hmacSecret")
        requested = body.get("name")
        if requested is not None and not isinstance(requested, str):
            raise ApiProblem(400, "INVALID_FIELD", "name must be a string", "name")
        org_id, name = self._scope_for(account, hook_type, requested)

        webhook = {
            "id": _random_id(20),
            "creator": account.username,
            "createDate": self._now_text(),
            "type": hook_type,
            "name": name,
            "callbackUrl": callback_url,
        }
        with self.transaction() as db:
            db.execute(
                "INSERT INTO webhooks (id, creator, create_date, type, name, organization_id,"
                " tenant, callback_url, hmac_secret) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (webhook["id"], webhook["creator"], webhook["createDate"], hook_type, name,
                 org_id, TENANT, callback_url, secret),
            )
            self.hooks[webhook["id"]] = HookTarget(webhook["id"], hook_type, org_id, TENANT,
                                                   callback_url, secret)
        if secret is not None:
            webhook["hmacSecret"] = secret
        return webhook

    @staticmethod
    def _scope_for(account: Account, hook_type: str, requested: str | None
                   ) -> tuple[str | None, str]:
        """(organization id or None, the webhook's ``name``) for a create, or 400."""
        if account.role == "global_admin":
            if hook_type == "tenant":
                if requested not in (None, TENANT):
                    raise ApiProblem(400, "INVALID_FIELD",
                                     f"a tenant webhook covers tenant '{TENANT}'; "
                                     "leave name out or set it to the tenant", "name")
                return None, TENANT
            if requested is None:
                raise ApiProblem(400, "MISSING_FIELD",
                                 "name (the organization) is required for an organization "
                                 "webhook created by a global admin", "name")
            org_id = _find_organization(requested)
            if org_id is None:
                raise ApiProblem(400, "INVALID_FIELD", f"unknown organization '{requested}'",
                                 "name")
            return org_id, org_id
        own = account.organization_id
        assert own is not None and account.organization is not None
        if hook_type == "tenant":
            raise ApiProblem(400, "INVALID_FIELD",
                             "organization admins can only create organization webhooks", "type")
        if requested is not None and requested not in (own, account.organization):
            raise ApiProblem(400, "INVALID_FIELD",
                             "organization admins can only create webhooks for their own "
                             "organization", "name")
        return own, own

    def _visible_rows(self, account: Account) -> list[sqlite3.Row]:
        with self._lock:
            if account.role == "global_admin":
                return self._db.execute(
                    "SELECT * FROM webhooks WHERE tenant = ? ORDER BY seq", (TENANT,)).fetchall()
            return self._db.execute(
                "SELECT * FROM webhooks WHERE type = 'organization' AND organization_id = ?"
                " ORDER BY seq", (account.organization_id,)).fetchall()

    def list_webhooks(self, principal: Principal) -> dict[str, Any]:
        """``{"total", "results"}`` of the webhooks the caller may see."""
        account = self._require_webhooks_right(principal)
        results = [_webhook_to_api(row, account) for row in self._visible_rows(account)]
        return {"total": len(results), "results": results}

    def delete_webhook(self, principal: Principal, webhook_id: str) -> None:
        """Delete a webhook the caller may see; 404 for any other id."""
        account = self._require_webhooks_right(principal)
        visible = {row["id"] for row in self._visible_rows(account)}
        if webhook_id not in visible:
            raise ApiProblem(404, "NOT_FOUND", f"no webhook with id '{webhook_id}'", "webhookId")
        with self.transaction() as db:
            db.execute("DELETE FROM webhooks WHERE id = ?", (webhook_id,))
            self.hooks.pop(webhook_id, None)
        self._removed(webhook_id)

    def _now_text(self) -> str:
        return format_epoch(self.clock())


def _find_organization(requested: str) -> str | None:
    for name, org_id in ORGANIZATIONS.items():
        if requested in (org_id, name) or requested.casefold() == name.casefold():
            return org_id
    return None


def _validated_callback_url(value: Any) -> str:
    if value is None:
        raise ApiProblem(400, "MISSING_FIELD", "callbackUrl is required", "callbackUrl")
    if not isinstance(value, str):
        raise ApiProblem(400, "INVALID_FIELD", "callbackUrl must be a string", "callbackUrl")
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        valid = False
    if not valid or len(value) > MAX_URL_LENGTH or any(c.isspace() for c in value):
        raise ApiProblem(400, "INVALID_FIELD",
                         f"callbackUrl must be an absolute http(s) URL of at most "
                         f"{MAX_URL_LENGTH} characters", "callbackUrl")
    return value


def _hook_target(row: sqlite3.Row) -> HookTarget:
    return HookTarget(row["id"], row["type"], row["organization_id"], row["tenant"],
                      row["callback_url"], row["hmac_secret"])


def _webhook_to_api(row: sqlite3.Row, viewer: Account) -> dict[str, Any]:
    webhook = {"id": row["id"], "creator": row["creator"], "createDate": row["create_date"],
               "type": row["type"], "name": row["name"], "callbackUrl": row["callback_url"]}
    if row["hmac_secret"] is not None and row["creator"] == viewer.username:
        webhook["hmacSecret"] = row["hmac_secret"]
    return webhook

