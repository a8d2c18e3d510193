"""The seed document's own JavaScript example runs unchanged against the sandbox.

``data/seed_webhook_example.js`` is the seed's "Example Implementation", copied verbatim;
only its URL and TOKEN constants are pointed at the sandbox, as its comments ask.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from circtoolkit import Sandbox

from .conftest import ACME_ADMIN

EXAMPLE = Path(__file__).with_name("data") / "seed_webhook_example.js"
pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")


def test_seed_javascript_example_runs_unchanged(sandbox: Sandbox, tmp_path: Path) -> None:
    source = EXAMPLE.read_text()
    token = sandbox.client(ACME_ADMIN).token
    pointed = source.replace('const URL = "https://sandbox.circularo.com";',
                             f'const URL = "{sandbox.root_url}";')
    pointed = pointed.replace('const TOKEN = "YOUR_AUTH_TOKEN";', f'const TOKEN = "{token}";')
    assert pointed.count(sandbox.root_url) == 1 and pointed.count(str(token)) == 1
    script = tmp_path / "example.mjs"  # the example uses top-level await: an ES module
    script.write_text(pointed)

    result = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert "Error managing webhooks" not in result.stdout + result.stderr
    created = re.search(r"^Webhook created with ID: ([A-Za-z0-9]{20})$", result.stdout, re.M)
    assert created, result.stdout
    assert re.search(r"^Found 1 webhooks$", result.stdout, re.M)
    assert f"Webhook ID: {created.group(1)}" in result.stdout
    assert "Callback URL: https://your-server.com/webhook-endpoint" in result.stdout
    assert result.stdout.rstrip().endswith("Webhook deleted successfully: SUCCESS")
    assert sandbox.client(ACME_ADMIN).list_webhooks().total == 0
