"""The OpenAPI 3 description of the sandbox's API (served at ``/api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

from ..models import EVENT_TYPES, WEBHOOK_TYPES

__all__ = ["build_openapi"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERRORS = {
    "400": _json(_ref("Error"), "Invalid input; `field` names the offending field."),
    "401": _json(_ref("Error"), "Missing, unknown, revoked or expired token."),
    "403": _json(_ref("Error"), "The user lacks the right for this call."),
    "404": _json(_ref("Error"), "No such object, or not visible to this user."),
    "409": _json(_ref("Error"), "Stale `_version` (read the document again), or a step the "
                                "document's state does not allow."),
}
_TOKEN = {"name": "token", "in": "query", "required": True, "schema": {"type": "string"},
          "description": "Session token from POST /login, or an API key."}


def _operation(summary: str, operation_id: str, ok: dict[str, Any], *, errors: tuple[str, ...],
               token: bool = True, body: dict[str, Any] | None = None,
               parameters: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "operationId": operation_id,
        "parameters": ([_TOKEN] if token else []) + list(parameters),
        "responses": {"200": ok, **{code: _ERRORS[code] for code in errors}},
    }
    if body is not None:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": body}}}
    return operation


def _sandbox_only(operation: dict[str, Any]) -> dict[str, Any]:
    operation["tags"] = ["sandbox-only"]
    operation["x-sandbox-only"] = True
    operation["description"] = ("Sandbox only: the real Circularo has no such endpoint. "
                                + operation.get("description", ""))
    return operation


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
            "description": description}


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["status", "code", "message", "field"],
        "properties": {
            "status": {"type": "string", "enum": ["ERROR"]},
            "code": {"type": "string", "examples": ["INVALID_FIELD", "TOKEN_EXPIRED"]},
            "message": {"type": "string"},
            "field": {"type": ["string", "null"]},
        },
    },
    "Success": {"type": "object", "required": ["status"],
                "properties": {"status": {"type": "string", "enum": ["SUCCESS"]}}},
    "LoginRequest": {
        "type": "object",
        "required": ["name", "password"],
        "properties": {
            "name": {"type": "string"},
            "password": {"type": "string", "format": "password"},
            "tenant": {"type": "string", "default": "default"},
            "returnToken": {"type": "boolean", "default": False},
        },
    },
    "User": {
        "type": "object",
        "properties": {
            "username": {"type": "string"},
            "name": {"type": "string"},
            "role": {"type": "string", "enum": ["global_admin", "org_admin", "user"]},
            "tenant": {"type": "string"},
            "organization": {"type": ["object", "null"],
                             "properties": {"id": {"type": "string"}, "name": {"type": "string"}}},
        },
    },
    "LoginResponse": {
        "type": "object",
        "required": ["logged", "tenant", "rights", "user"],
        "properties": {
            "logged": {"type": "boolean"},
            "token": {"type": "string", "description": "Present when returnToken is true."},
            "tenant": {"type": "string"},
            "rights": {"type": "array", "items": {"type": "string"}},
            "user": _ref("User"),
        },
    },
    "ApiKey": {
        "type": "object",
        "required": ["id", "creator", "createDate"],
        "properties": {"id": {"type": "string", "description": "The key; use it as a token."},
                       "creator": {"type": "string"},
                       "createDate": {"type": "string", "format": "date-time"}},
    },
    "WebhookCreate": {
        "type": "object",
        "required": ["type", "callbackUrl"],
        "properties": {
            "type": {"type": "string", "enum": list(WEBHOOK_TYPES)},
            "callbackUrl": {"type": "string", "format": "uri", "maxLength": 2048},
            "hmacSecret": {"type": "string", "minLength": 1, "maxLength": 256},
            "name": {"type": "string",
                     "description": "Global admins: the organization (name or id) of an "
                                    "organization webhook."},
        },
    },
    "Webhook": {
        "type": "object",
        "required": ["id", "creator", "createDate", "type", "name", "callbackUrl"],
        "properties": {
            "id": {"type": "string", "pattern": "^[A-Za-z0-9]{20}$"},
            "creator": {"type": "string"},
            "createDate": {"type": "string", "format": "date-time"},
            "type": {"type": "string", "enum": list(WEBHOOK_TYPES)},
            "name": {"type": "string",
                     "description": "Organization id (organization webhooks) or tenant."},
            "callbackUrl": {"type": "string", "format": "uri"},
            "hmacSecret": {"type": "string", "description": "Shown to the creator only."},
        },
    },
    "WebhookList": {
        "type": "object",
        "required": ["total", "results"],
        "properties": {"total": {"type": "integer"},
                       "results": {"type": "array", "items": _ref("Webhook")}},
    },
    "DocumentCreate": {
        "type": "object",
        "required": ["title"],
        "properties": {"title": {"type": "string", "minLength": 1, "maxLength": 200},
                       "recipients": {"type": "array", "items": {"type": "string"},
                                      "description": "Users asked to sign at once."}},
    },
    "DocumentCreated": {
        "type": "object",
        "properties": {"results": {"type": "array", "items": {
            "type": "object",
            "properties": {"documentId": {"type": "string"}, "title": {"type": "string"},
                           "status": {"type": "string"}, "_version": {"type": "integer"}}}}},
    },
    "Document": {
        "type": "object",
        "required": ["documentId", "title", "owner", "status", "_version", "requests"],
        "properties": {
            "documentId": {"type": "string"},
            "title": {"type": "string"},
            "owner": {"type": "string"},
            "organization": {"type": ["string", "null"]},
            "status": {"type": "string", "enum": ["draft", "pending", "completed", "rejected",
                                                  "expired", "cancelled"]},
            "_version": {"type": "integer"},
            "createDate": {"type": "string", "format": "date-time"},
            "updateDate": {"type": "string", "format": "date-time"},
            "requests": {"type": "array", "items": {
                "type": "object",
                "properties": {"shareId": {"type": "string"}, "recipient": {"type": "string"},
                               "purpose": {"type": "string"}, "status": {"type": "string"},
                               "validUntil": {"type": ["string", "null"],
                                              "format": "date-time"}}}},
        },
    },
    "DocumentEdit": {
        "type": "object", "required": ["title", "_version"],
        "properties": {"title": {"type": "string"}, "_version": {"type": "integer"}},
    },
    "DocumentStep": {
        "type": "object", "required": ["documentId"],
        "properties": {"documentId": {"type": "string"},
                       "to": {"type": "string", "description": "delegate: the new signer."}},
    },
    "DocumentState": {
        "type": "object",
        "properties": {"documentId": {"type": "string"}, "status": {"type": "string"},
                       "_version": {"type": "integer"}},
    },
    "Share": {
        "type": "object",
        "required": ["documentId", "sharePurpose", "recipients"],
        "properties": {
            "documentId": {"type": "string"},
            "sharePurpose": {"type": "string", "enum": ["sign", "approve", "review", "accept"]},
            "recipients": {"type": "array", "items": {"type": "string"}, "minItems": 1},
            "validUntil": {"type": "string", "format": "date-time",
                           "description": "Pending requests then expire (signExpired)."},
        },
    },
    "ShareCreated": {
        "type": "object",
        "properties": {"shareId": {"type": "string"}, "documentId": {"type": "string"},
                       "sharePurpose": {"type": "string"},
                       "recipients": {"type": "array", "items": {"type": "string"}},
                       "validUntil": {"type": ["string", "null"], "format": "date-time"}},
    },
    "Trigger": {
        "type": "object",
        "required": ["event"],
        "properties": {
            "event": {"type": "string", "enum": list(EVENT_TYPES)},
            "organization": {"type": "string", "description": "Name or id; default: yours."},
            "documentId": {"type": "string"},
            "actor": {"type": "string"},
        },
    },
    "Triggered": {
        "type": "object",
        "properties": {"documentId": {"type": "string"}, "event": {"type": "string"},
                       "actor": {"type": "string"},
                       "timestamp": {"type": "string", "format": "date-time"},
                       "eventId": {"type": "string"}, "deliveries": {"type": "integer"}},
    },
    "Delivery": {
        "type": "object",
        "properties": {
            "seq": {"type": "integer"}, "deliveryId": {"type": "string"},
            "eventId": {"type": "string"}, "webhookId": {"type": "string"},
            "callbackUrl": {"type": "string"}, "event": {"type": "string"},
            "documentId": {"type": "string"}, "actor": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
            "state": {"type": "string",
                      "enum": ["pending", "delivered", "failed", "gone", "cancelled"]},
            "nextAttemptAt": {"type": ["string", "null"], "format": "date-time"},
            "attempts": {"type": "array", "items": {
                "type": "object",
                "properties": {"attempt": {"type": "integer"},
                               "at": {"type": "string", "format": "date-time"},
                               "statusCode": {"type": ["integer", "null"]},
                               "latencyMs": {"type": "number"},
                               "error": {"type": ["string", "null"]}}}},
        },
    },
    "DeliveryList": {
        "type": "object",
        "properties": {"total": {"type": "integer"},
                       "results": {"type": "array", "items": _ref("Delivery")}},
    },
    "Notification": {
        "type": "object",
        "description": "What a webhook's callback URL receives (HTTP POST).",
        "required": ["documentId", "event", "actor", "timestamp"],
        "properties": {
            "documentId": {"type": "string"},
            "event": {"type": "string", "enum": list(EVENT_TYPES)},
            "actor": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"},
        },
    },
}


_document_id = _path_parameter("documentId", "The document's id.")


def build_openapi(server_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document, with ``server_url`` (ending in ``/api/v1``) as its server."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Circularo API (circtoolkit sandbox)",
            "version": "1.0.0",
            "description": "The offline Circularo of circtoolkit: login, API keys and "
                           "webhooks with the real API's shapes. Demo accounts use the "
                           "password `sandbox`.",
        },
        "servers": [{"url": server_url}],
        "paths": {
            "/login": {
                "post": _operation(
                    "Log in", "login", _json(_ref("LoginResponse"), "Logged in."),
                    errors=("400", "401"), token=False, body=_ref("LoginRequest")),
                "get": _operation(
                    "Check a token", "checkLogin", _json(_ref("LoginResponse"), "Valid token."),
                    errors=("401",),
                    parameters=({"name": "returnToken", "in": "query", "required": False,
                                 "schema": {"type": "boolean"}},)),
            },
            "/logout": {"get": _operation("End the session", "logout",
                                          _json(_ref("Success"), "Logged out."),
                                          errors=("400", "401"))},
            "/api/key": {"post": _operation("Create an API key", "createApiKey",
                                            _json(_ref("ApiKey"), "The new key."),
                                            errors=("401",))},
            "/api/key/{key}": {"delete": _operation(
                "Revoke an API key", "revokeApiKey", _json(_ref("Success"), "Revoked."),
                errors=("401", "404"),
                parameters=(_path_parameter("key", "The API key."),))},
            "/webhooks": {
                "post": _operation(
                    "Create a webhook", "createWebhook", _json(_ref("Webhook"), "Created."),
                    errors=("400", "401", "403"), body=_ref("WebhookCreate")),
                "get": _operation(
                    "List webhooks", "listWebhooks", _json(_ref("WebhookList"), "Visible ones."),
                    errors=("401", "403")),
            },
            "/webhooks/{webhookId}": {"delete": _operation(
                "Delete a webhook", "deleteWebhook", _json(_ref("Success"), "Deleted."),
                errors=("401", "403", "404"),
                parameters=(_path_parameter("webhookId", "The webhook's id."),))},
            "/documents": {"post": _operation(
                "Create a document", "createDocument",
                _json(_ref("DocumentCreated"), "Created (documentCreated; signRequest each)."),
                errors=("400", "401"), body=_ref("DocumentCreate"))},
            "/documents/{documentId}": {
                "get": _operation(
                    "Read a document", "getDocument", _json(_ref("Document"), "Its state."),
                    errors=("401", "403", "404"), parameters=(_document_id,)),
                "put": _operation(
                    "Edit a document", "editDocument",
                    _json(_ref("DocumentState"), "Edited (documentEdited)."),
                    errors=("400", "401", "403", "404", "409"), body=_ref("DocumentEdit"),
                    parameters=(_document_id,)),
                "delete": _operation(
                    "Delete a document", "deleteDocument",
                    _json(_ref("Success"), "Deleted (documentDeleted)."),
                    errors=("401", "403", "404"), parameters=(_document_id,)),
            },
            "/documents/{action}/{version}": {"put": _operation(
                "Sign, reject, delegate, approve, review or accept", "documentAction",
                _json(_ref("DocumentState"), "Done (documentSigned and documentCompleted, "
                                             "signRejected, signDelegated, or "
                                             "documentSimpleActionExecuted)."),
                errors=("400", "401", "403", "404", "409"), body=_ref("DocumentStep"),
                parameters=({"name": "action", "in": "path", "required": True,
                             "schema": {"type": "string", "enum": ["sign", "reject", "delegate",
                                                                   "approve", "review",
                                                                   "accept"]}},
                            {"name": "version", "in": "path", "required": True,
                             "schema": {"type": "integer"},
                             "description": "The document's current _version."}))},
            "/share": {"post": _operation(
                "Share a document", "shareDocument",
                _json(_ref("ShareCreated"), "Shared (signRequest each, when signing)."),
                errors=("400", "401", "403", "404", "409"), body=_ref("Share"))},
            "/share/{shareId}": {"delete": _operation(
                "Cancel a share", "cancelShare",
                _json(_ref("Success"), "Cancelled (signCancelled each)."),
                errors=("401", "403", "404", "409"),
                parameters=(_path_parameter("shareId", "The share's id."),))},
            "/sandbox/trigger": {"post": _sandbox_only(_operation(
                "Emit one event", "sandboxTrigger",
                _json(_ref("Triggered"), "Queued for every covering webhook."),
                errors=("400", "401", "403"), body=_ref("Trigger")))},
            "/sandbox/deliveries": {"get": _sandbox_only(_operation(
                "Delivery attempts", "sandboxDeliveries",
                _json(_ref("DeliveryList"), "Deliveries to your webhooks, oldest first."),
                errors=("400", "401", "403"),
                parameters=(
                    {"name": "webhookId", "in": "query", "required": False,
                     "schema": {"type": "string"}},
                    {"name": "state", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": ["pending", "delivered", "failed",
                                                           "gone", "cancelled"]}},
                    {"name": "after", "in": "query", "required": False,
                     "schema": {"type": "integer"}, "description": "Only seq > after."},
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000}})))},
            "/openapi.json": {"get": _operation(
                "This document", "openapi",
                {"description": "OpenAPI 3.1", "content": {"application/json": {}}},
                errors=(), token=False)},
        },
        "webhooks": {
            "documentEvent": {"post": {
                "summary": "A notification to a webhook's callbackUrl",
                "parameters": [{"name": "x-circularo-signature", "in": "header",
                                "required": False, "schema": {"type": "string"},
                                "description": "Lowercase hex HMAC-SHA256 of the raw body, "
                                               "when the webhook has an hmacSecret."}],
                "requestBody": {"content": {"application/json": {
                    "schema": _ref("Notification")}}},
                "responses": {"2XX": {"description": "Received. Anything else is retried; "
                                                     "410 disables the webhook."}},
            }},
        },
        "components": {"schemas": _SCHEMAS},
    }
