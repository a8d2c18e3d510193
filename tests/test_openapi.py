"""The OpenAPI document describes every endpoint the sandbox serves, and validates."""

from __future__ import annotations

import re

import requests
from openapi_spec_validator import validate
from starlette.routing import Route

from circtoolkit import Sandbox
from circtoolkit.sandbox.app import API_PREFIX


def test_openapi_document_is_valid_and_complete(sandbox: Sandbox) -> None:
    response = requests.get(sandbox.url + "/openapi.json", timeout=5)
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    assert spec["servers"] == [{"url": sandbox.url}]

    app = sandbox._server.app
    served = {
        (method.lower(), route.path.removeprefix(API_PREFIX))
        for route in app.routes if isinstance(route, Route) and route.path.startswith(API_PREFIX)
        for method in (route.methods or ()) if method != "HEAD"
    }
    described = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert served == described
    assert len(described) == 18


def test_every_operation_documents_its_errors_and_token(sandbox: Sandbox) -> None:
    spec = requests.get(sandbox.url + "/openapi.json", timeout=5).json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            names = {p["name"] for p in operation["parameters"]}
            public = (method, path) in {("post", "/login"), ("get", "/openapi.json")}
            assert ("token" in names) != public, (method, path)
            for parameter in re.findall(r"{(\w+)}", path):
                assert parameter in names
            if not public:
                assert "401" in operation["responses"], (method, path)


def test_sandbox_only_endpoints_are_flagged(sandbox: Sandbox) -> None:
    spec = requests.get(sandbox.url + "/openapi.json", timeout=5).json()
    for path, item in spec["paths"].items():
        for operation in item.values():
            flagged = operation.get("x-sandbox-only", False)
            assert flagged == path.startswith("/sandbox/"), path
            if flagged:
                assert operation["tags"] == ["sandbox-only"]
                assert operation["description"].startswith("Sandbox only")
    assert "documentEvent" in spec["webhooks"]
