"""The sandbox's ASGI app: Circularo's login and webhook API under ``/api/v1``.

Every error, whatever raised it, answers with one body shape::

    {"status": "ERROR", "code": "INVALID_FIELD", "message": "...", "field": "callbackUrl"}

``field`` names the offending request field (or ``body``, ``token``) and is null when
no single field is at fault. Requests are logged to ``circtoolkit.sandbox`` with the
token masked.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from .._redact import redact
from .delivery import FINAL_STATES, list_deliveries
from .openapi import build_openapi
from .state import ApiProblem, Principal, SandboxState
from .workflow import Workflow

__all__ = ["API_PREFIX", "MAX_BODY", "RELAY_PREFIX", "Services", "create_app", "error_response"]

API_PREFIX = "/api/v1"
MAX_BODY = 1024 * 1024

log = logging.getLogger("circtoolkit.sandbox")

@dataclass(frozen=True, slots=True)
class Services:
    """What the handlers work on."""

    state: SandboxState
    workflow: Workflow


Handler = Callable[[Request, "Services"], Awaitable[Any]]

_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def error_response(problem: ApiProblem) -> JSONResponse:
    """The documented error body for a problem, with its status."""
    return JSONResponse(problem.body(), status_code=problem.status)


async def read_json(request: Request) -> Any:
    """The request's JSON body, or 400/413 naming ``body``."""
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiProblem(413, "PAYLOAD_TOO_LARGE", f"the body exceeds {MAX_BODY} bytes", "body")
    if not body.strip():
        raise ApiProblem(400, "INVALID_JSON", "the body must be a JSON object; it is empty",
                         "body")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiProblem(400, "INVALID_JSON", f"the body is not valid JSON: {exc}", "body") from None


async def read_object(request: Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiProblem(400, "INVALID_JSON", "the body must be a JSON object", "body")
    return body


def principal_of(request: Request, sb: Services) -> Principal:
    """Authenticate the ``token`` query parameter."""
    return sb.state.authenticate(request.query_params.get("token"))


def _endpoint(handler: Handler, sb: Services) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler: JSON out, problems to error bodies, crashes to a logged 500."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        try:
            result = await handler(request, sb)
            response: Response = result if isinstance(result, Response) else JSONResponse(result)
        except ApiProblem as problem:
            response = error_response(problem)
        except Exception:
            log.exception("internal error in %s %s", request.method, request.url.path)
            response = error_response(ApiProblem(500, "INTERNAL", "internal sandbox error"))
        log.info("%s %s -> %d (%.1f ms)", request.method,
                 redact(str(request.url.include_query_params())), response.status_code,
                 (time.perf_counter() - started) * 1000)
        return response

    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    return endpoint


# -- handlers -------------------------------------------------------------------------

def _login_answer(token: str | None, principal_account: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {"logged": True}
    if token is not None:
        answer["token"] = token
    answer.update({"tenant": principal_account.to_api()["tenant"],
                   "rights": list(principal_account.rights),
                   "user": principal_account.to_api()})
    return answer


def _wants_token(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


async def login(request: Request, sb: Services) -> Any:
    """POST /login: open a session; with ``returnToken: true`` the token is in the answer."""
    body = await read_object(request)
    token, account = sb.state.login(body.get("name"), body.get("password"), body.get("tenant"))
    return _login_answer(token if _wants_token(body.get("returnToken")) else None, account)


async def check_login(request: Request, sb: Services) -> Any:
    """GET /login: whether the token is valid, and whose it is."""
    principal = principal_of(request, sb)
    token = request.query_params.get("token")
    return _login_answer(token if _wants_token(request.query_params.get("returnToken")) else None,
                         principal.account)


async def logout(request: Request, sb: Services) -> Any:
    """GET /logout: end the session; the token gets 401 from now on."""
    sb.state.logout(principal_of(request, sb))
    return {"status": "SUCCESS"}


async def create_api_key(request: Request, sb: Services) -> Any:
    """POST /api/key: a long-lived API key for the caller."""
    return sb.state.create_api_key(principal_of(request, sb))


async def revoke_api_key(request: Request, sb: Services) -> Any:
    """DELETE /api/key/<key>: revoke an API key."""
    sb.state.revoke_api_key(principal_of(request, sb), request.path_params["key"])
    return {"status": "SUCCESS"}


async def create_webhook(request: Request, sb: Services) -> Any:
    """POST /webhooks: subscribe a callback URL to a scope's document events."""
    principal = principal_of(request, sb)
    return sb.state.create_webhook(principal, await read_json(request))


async def list_webhooks(request: Request, sb: Services) -> Any:
    """GET /webhooks: the webhooks the caller may see."""
    return sb.state.list_webhooks(principal_of(request, sb))


async def delete_webhook(request: Request, sb: Services) -> Any:
    """DELETE /webhooks/<id>: remove a webhook."""
    sb.state.delete_webhook(principal_of(request, sb), request.path_params["webhookId"])
    return {"status": "SUCCESS"}


async def openapi(request: Request, sb: Services) -> Any:
    """GET /openapi.json: this API described in OpenAPI 3."""
    return build_openapi(str(request.base_url).rstrip("/") + API_PREFIX)


async def index(request: Request, sb: Services) -> Any:
    """GET /: where things are."""
    base = str(request.base_url).rstrip("/")
    return {"service": "circtoolkit sandbox (offline Circularo)", "api": base + API_PREFIX,
            "openapi": base + API_PREFIX + "/openapi.json", "relay": base + RELAY_PREFIX}


async def create_document(request: Request, sb: Services) -> Any:
    """POST /documents: a new document (documentCreated); recipients are asked to sign."""
    account = principal_of(request, sb).account
    body = await read_object(request)
    return sb.workflow.create(account, body.get("title"), body.get("recipients"))


async def get_document(request: Request, sb: Services) -> Any:
    """GET /documents/<id>: the document's state, with ``_version``."""
    return sb.workflow.get(principal_of(request, sb).account, request.path_params["documentId"])


async def edit_document(request: Request, sb: Services) -> Any:
    """PUT /documents/<id>: change the title (documentEdited); needs the current _version."""
    account = principal_of(request, sb).account
    body = await read_object(request)
    if body.get("_version") is None:
        raise ApiProblem(400, "MISSING_FIELD", "_version is required", "_version")
    return sb.workflow.edit(account, request.path_params["documentId"], body.get("title"),
                            body["_version"])


async def delete_document(request: Request, sb: Services) -> Any:
    """DELETE /documents/<id>: documentDeleted."""
    return sb.workflow.delete(principal_of(request, sb).account,
                              request.path_params["documentId"])


async def share_document(request: Request, sb: Services) -> Any:
    """POST /share: ask recipients to sign (signRequest each), approve, review or accept."""
    account = principal_of(request, sb).account
    body = await read_object(request)
    return sb.workflow.share(account, body.get("documentId"), body.get("sharePurpose"),
                             body.get("recipients"), body.get("validUntil"))


async def cancel_share(request: Request, sb: Services) -> Any:
    """DELETE /share/<shareId>: cancel its pending requests (signCancelled each)."""
    return sb.workflow.cancel_share(principal_of(request, sb).account,
                                    request.path_params["shareId"])


async def document_action(request: Request, sb: Services) -> Any:
    """PUT /documents/<action>/<version>: sign, reject, delegate, approve, review, accept."""
    account = principal_of(request, sb).account
    body = await read_object(request)
    return sb.workflow.act(account, request.path_params["action"],
                           request.path_params["version"], body.get("documentId"),
                           to=body.get("to"))


async def sandbox_trigger(request: Request, sb: Services) -> Any:
    """POST /sandbox/trigger: emit one event through the delivery path (sandbox only)."""
    account = principal_of(request, sb).account
    body = await read_object(request)
    return sb.workflow.trigger(account, body.get("event"), body.get("organization"),
                               body.get("documentId"), body.get("actor"))


async def sandbox_deliveries(request: Request, sb: Services) -> Any:
    """GET /sandbox/deliveries: every delivery to your webhooks and its attempts."""
    principal = principal_of(request, sb)
    query = request.query_params
    state_filter = query.get("state")
    if state_filter is not None and state_filter not in ("pending", *FINAL_STATES):
        raise ApiProblem(400, "INVALID_FIELD", "state must be pending, "
                         + ", ".join(FINAL_STATES), "state")
    try:
        after = int(query.get("after", "0"))
        limit = min(max(int(query.get("limit", "100")), 1), 1000)
    except ValueError:
        raise ApiProblem(400, "INVALID_FIELD", "after and limit must be integers",
                         "limit") from None
    visible = (None if principal.account.role == "global_admin"
               else {w["id"] for w in sb.state.list_webhooks(principal)["results"]})
    return list_deliveries(sb.state, visible, webhook_id=query.get("webhookId"),
                           delivery_state=state_filter, after=after, limit=limit)


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/login", login),
    ("GET", "/login", check_login),
    ("GET", "/logout", logout),
    ("POST", "/api/key", create_api_key),
    ("DELETE", "/api/key/{key}", revoke_api_key),
    ("POST", "/webhooks", create_webhook),
    ("GET", "/webhooks", list_webhooks),
    ("DELETE", "/webhooks/{webhookId}", delete_webhook),
    ("POST", "/documents", create_document),
    ("GET", "/documents/{documentId}", get_document),
    ("PUT", "/documents/{documentId}", edit_document),
    ("DELETE", "/documents/{documentId}", delete_document),
    ("PUT", "/documents/{action}/{version}", document_action),
    ("POST", "/share", share_document),
    ("DELETE", "/share/{shareId}", cancel_share),
    ("POST", "/sandbox/trigger", sandbox_trigger),
    ("GET", "/sandbox/deliveries", sandbox_deliveries),
    ("GET", "/openapi.json", openapi),
)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = {404: f"no such endpoint: {request.url.path}",
               405: f"{request.method} is not allowed on {request.url.path}"}.get(
        exc.status_code, str(exc.detail))
    response = error_response(ApiProblem(exc.status_code, code, message))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


RELAY_PREFIX = "/relay"


def create_app(state: SandboxState, workflow: Workflow) -> Starlette:
    """The sandbox's ASGI app over ``state`` and its document ``workflow``, with a relay
    (``circtoolkit.relay``) mounted at ``/relay``."""
    from ..relay import create_relay_app

    services = Services(state, workflow)
    routes: list[Any] = [Route(API_PREFIX + path, _endpoint(handler, services),
                               methods=[method]) for method, path, handler in ROUTES]
    routes.append(Route("/", _endpoint(index, services), methods=["GET"]))
    routes.append(Mount(RELAY_PREFIX, app=create_relay_app(None)))
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.sandbox = services
    return app
