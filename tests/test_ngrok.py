"""The optional ngrok tunnel (pyngrok). ngrok itself needs the public internet, which
these tests cannot reach: pyngrok's connect/disconnect are replaced, and the test skips
when pyngrok is not installed."""

from __future__ import annotations

import pytest

from circtoolkit import ConfigurationError
from circtoolkit.listener import Listener

ngrok = pytest.importorskip("pyngrok.ngrok")


class FakeTunnel:
    public_url = "https://abc123.ngrok.app"


def test_listener_url_is_the_ngrok_url(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[int] = []
    closed: list[str] = []
    monkeypatch.setattr(ngrok, "connect", lambda port, proto: opened.append(port) or FakeTunnel())
    monkeypatch.setattr(ngrok, "disconnect", closed.append)
    with Listener("s", ngrok=True, path="/hooks") as listener:
        assert listener.url == "https://abc123.ngrok.app/hooks"
        assert opened == [int(listener.local_url.split(":")[2].split("/")[0])]
    assert closed == ["https://abc123.ngrok.app"]


def test_ngrok_and_a_relay_exclude_each_other() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        Listener("s", ngrok=True, relay="http://127.0.0.1:9/stream/x#key")
