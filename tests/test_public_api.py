"""The public names, the exception tree and the models' masking."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import requests

import circtoolkit
from circtoolkit import errors
from circtoolkit.models import ApiKey, Webhook, WebhookList, format_timestamp, parse_timestamp

EXPECTED_ALL = {
    "DEFAULT_BASE_URL", "EVENT_TYPES", "SIGNATURE_HEADER", "WEBHOOK_TYPES",
    "APIConnectionError", "APIStatusError", "APITimeoutError", "ApiKey", "AuthenticationError",
    "BadRequestError", "CircularoClient", "CircularoError", "ConfigurationError",
    "ConflictError", "EventStore", "Exchange", "InternalServerError", "Listener",
    "ListenerError", "NotFoundError",
    "PermissionDeniedError", "RateLimitError", "Sandbox", "TokenExpiredError",
    "TransportError", "UnexpectedResponseError", "Verifier", "Webhook", "WebhookList",
    "__version__",
    "sign", "verify",
}


def test_all_is_pinned_and_importable() -> None:
    assert set(circtoolkit.__all__) == EXPECTED_ALL
    for name in circtoolkit.__all__:
        assert getattr(circtoolkit, name) is not None


def test_core_imports_no_server_or_widget() -> None:
    import subprocess
    import sys

    code = ("import sys, circtoolkit, circtoolkit.client, circtoolkit.signing; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('uvicorn', 'starlette', 'ipywidgets') or m.startswith('circtoolkit.sandbox')"
            " or m == 'circtoolkit.listener'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_one_exception_tree_drawn_in_the_docstring() -> None:
    import circtoolkit.sandbox  # noqa: F401 - its ApiProblem belongs to the tree too

    def family(cls: type) -> list[type]:
        return [cls, *(sub for child in cls.__subclasses__() for sub in family(child))]

    classes = family(errors.CircularoError)
    assert len(classes) == 17
    doc = errors.__doc__ or ""
    for cls in classes:
        assert cls.__name__ in doc, cls
        assert issubclass(cls, errors.CircularoError)
    for cls in classes:
        if issubclass(cls, errors.TransportError):
            assert issubclass(cls, requests.RequestException)
    assert issubclass(errors.APIStatusError, requests.HTTPError)
    assert issubclass(errors.APITimeoutError, requests.Timeout)
    assert issubclass(errors.ConfigurationError, ValueError)


def test_error_for_status() -> None:
    assert errors.error_for_status(400, {}) is errors.BadRequestError
    assert errors.error_for_status(401, {"code": "TOKEN_EXPIRED"}) is errors.TokenExpiredError
    assert errors.error_for_status(401, "text") is errors.AuthenticationError
    assert errors.error_for_status(418, None) is errors.APIStatusError
    assert errors.error_for_status(503, None) is errors.InternalServerError


SEED_WEBHOOK = {
    "id": "fHgWAoL8BAet7hOb3zy0",
    "creator": "john.doe@circularo.com",
    "createDate": "2023-07-19T10:30:25.542Z",
    "type": "organization",
    "name": "494f4f2f-4215-452c-b004-1bcad4706626",
    "callbackUrl": "https://webhook.site/7d041a97-550a-4e9f-97c9-66547b4807a3",
    "hmacSecret": "Gh1!f5dFs0dA",
}


def test_webhook_parses_the_seed_and_masks_its_secret() -> None:
    webhook = Webhook.from_api(SEED_WEBHOOK)
    assert webhook.create_date == datetime(2023, 7, 19, 10, 30, 25, 542000, tzinfo=UTC)
    assert webhook.to_api() == SEED_WEBHOOK
    assert "Gh1!f5dFs0dA" not in repr(webhook)
    assert "Gh1!f5dFs0dA" not in str(webhook)
    assert "hmac_secret='****'" in repr(webhook)
    assert webhook.signed


def test_webhook_list_behaves_like_a_sequence_and_a_frame() -> None:
    unsigned = {k: v for k, v in SEED_WEBHOOK.items() if k != "hmacSecret"} | {"id": "b" * 20}
    listing = WebhookList.from_api({"total": 2, "results": [SEED_WEBHOOK, unsigned]})
    assert len(listing) == 2 and listing.total == 2
    assert [w.id for w in listing] == ["fHgWAoL8BAet7hOb3zy0", "b" * 20]
    assert listing[1].hmac_secret is None
    frame = listing.to_dataframe()
    assert list(frame.columns) == ["id", "creator", "create_date", "type", "name",
                                   "callback_url", "signed"]
    assert str(frame["create_date"].dtype) in ("datetime64[ns, UTC]", "datetime64[us, UTC]",
                                                "datetime64[ms, UTC]")
    assert isinstance(frame["type"].dtype, pd.CategoricalDtype)
    assert frame["signed"].tolist() == [True, False]
    assert "Gh1!f5dFs0dA" not in frame.to_string()
    empty = WebhookList.from_api({"total": 0, "results": []}).to_dataframe()
    assert len(empty) == 0 and list(empty.columns) == list(frame.columns)


def test_api_key_repr_is_masked() -> None:
    key = ApiKey.from_api({"id": "k" * 44 + "WXYZ", "creator": "a@b.test",
                           "createDate": "2023-07-19T10:30:25.542Z"})
    assert "k" * 10 not in repr(key)
    assert "****WXYZ" in repr(key)


def test_timestamps_round_trip_with_milliseconds() -> None:
    text = "2023-07-19T12:30:00.152Z"
    assert format_timestamp(parse_timestamp(text)) == text
    assert parse_timestamp("2023-07-19T14:30:00.152+02:00") == parse_timestamp(text)
