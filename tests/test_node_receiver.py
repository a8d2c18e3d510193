"""A Node.js receiver using the seed's own verifyWebhookSignature accepts every signed
delivery of a simulation, and rejects them all when given the wrong secret."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from circtoolkit.sandbox import Sandbox

from .conftest import ACME_ADMIN

RECEIVER = Path(__file__).with_name("data") / "node_receiver.cjs"
SECRET = "YourSecretKey123!"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


class NodeReceiver:
    def __init__(self, secret: str) -> None:
        self.process = subprocess.Popen(["node", str(RECEIVER), secret], stdout=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/circularo"

    def stats(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url, timeout=5) as answer:
            return json.load(answer)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def node_receiver(request: pytest.FixtureRequest) -> Iterator[NodeReceiver]:
    receiver = NodeReceiver(request.param)
    yield receiver
    receiver.close()


@pytest.mark.parametrize("node_receiver", [SECRET], indirect=True)
def test_node_accepts_every_signed_delivery(node_receiver: NodeReceiver) -> None:
    with Sandbox(retry_schedule=(0.05,)) as sandbox:
        sandbox.client(ACME_ADMIN).create_webhook(node_receiver.url, hmac_secret=SECRET)
        report = sandbox.simulate(documents=50, seed=3, organization="Acme", progress=False)
        sandbox.wait_for_deliveries(30)
        states = sandbox.deliveries(attempts=False)["state"].astype(str)
    assert report.deliveries > 200
    assert node_receiver.stats() == {"accepted": report.deliveries, "rejected": 0,
                                     "unsigned": 0}
    assert set(states) == {"delivered"}


@pytest.mark.parametrize("node_receiver", ["not-the-secret"], indirect=True)
def test_node_rejects_every_delivery_under_the_wrong_secret(node_receiver: NodeReceiver) -> None:
    with Sandbox(retry_schedule=(0.05,)) as sandbox:
        sandbox.client(ACME_ADMIN).create_webhook(node_receiver.url, hmac_secret=SECRET)
        report = sandbox.simulate(documents=20, seed=3, organization="Acme", progress=False)
        sandbox.wait_for_deliveries(30)
        attempts = sandbox.deliveries()
    assert node_receiver.stats() == {"accepted": 0, "rejected": 2 * report.deliveries,
                                     "unsigned": 0}
    assert set(attempts["status_code"]) == {401}
    assert set(attempts["state"].astype(str)) == {"failed"}
