"""The ``circtoolkit`` command: the sandbox starts, serves and stops cleanly; the demo runs."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from circtoolkit import CircularoClient
from circtoolkit.cli import SEED_HMAC_SECRET

from .conftest import ACME_ADMIN


def test_sandbox_command_announces_fast_retries(tmp_path: Path) -> None:
    process = run_cli("sandbox", "--port", "0", "--fast-retries", "--quiet")
    try:
        _, banner = read_banner(process)
        assert any(line.startswith("Delivery retries after: fast: 50 ms") for line in banner)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=15)
    assert process.returncode == 0


def run_cli(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "circtoolkit", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def read_banner(process: subprocess.Popen[str]) -> tuple[str, list[str]]:
    """The API URL the sandbox printed, and the banner's lines."""
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            break
    match = re.search(r"offline Circularo API at (http://\S+/api/v1)", "\n".join(lines))
    assert match, lines
    return match.group(1), lines


@pytest.fixture
def cli_sandbox(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    process = run_cli("sandbox", "--port", "0", "--db", str(tmp_path / "cli.db"))
    try:
        url, banner = read_banner(process)
        yield process, url, banner
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_sandbox_command_serves_and_stops_cleanly(cli_sandbox, stop_signal: int) -> None:
    process, url, banner = cli_sandbox
    text = "\n".join(banner)
    for account in ("global-admin@sandbox.test", "admin@acme.test", "admin@globex.test",
                    "signer@acme.test"):
        assert account in text
    assert "password 'sandbox'" in text
    client = CircularoClient.login(url, ACME_ADMIN, "sandbox")
    hook = client.create_webhook("https://hooks.example/cli")
    assert client.list_webhooks()[0].id == hook.id

    process.send_signal(stop_signal)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "sandbox stopped" in out
    assert "Traceback" not in err
    assert client.token not in out + err  # request log lines mask it
    assert "/api/v1/webhooks?token=****" in out
    with pytest.raises(requests.ConnectionError):
        requests.get(url + "/openapi.json", timeout=2)


def test_sandbox_command_reports_a_busy_port(cli_sandbox) -> None:
    _, url, _ = cli_sandbox
    port = url.split(":")[2].split("/")[0]
    busy = run_cli("sandbox", "--port", port)
    _, err = busy.communicate(timeout=15)
    assert busy.returncode == 1
    assert "error" in err.lower() and "Traceback" not in err


def test_demo_walks_the_seed_steps_with_secrets_masked() -> None:
    result = subprocess.run([sys.executable, "-m", "circtoolkit", "demo"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for heading in ("Step 1 - Create a Webhook", "Step 2 - Retrieve Existing Webhooks",
                    "Step 3 - Delete a Webhook"):
        assert heading in out
    created = re.search(r"Webhook created with ID: ([A-Za-z0-9]{20})", out)
    assert created
    assert f"DELETE /webhooks/{created.group(1)}?token=****" in out
    assert "POST /webhooks?token=****" in out
    assert "Found 1 webhooks" in out
    assert '"status": "SUCCESS"' in out
    assert not re.search(r"token=(?!\*\*\*\*)", out)
    assert not re.search(r'"token": "(?!\*\*\*\*")', out)
    assert SEED_HMAC_SECRET not in out
    assert '"password": "****"' in out
    assert "Step 4 - Receive notifications" in out
    arrived = re.search(r"(\d+) notifications arrived, (\d+) verified", out)
    assert arrived and arrived.group(1) == arrived.group(2) and int(arrived.group(1)) > 10
    assert len(re.findall(r" verified$", out, re.M)) == int(arrived.group(1))
    assert "INVALID" not in out


def test_version_and_help() -> None:
    result = subprocess.run([sys.executable, "-m", "circtoolkit", "--version"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.startswith("circtoolkit ")
    result = subprocess.run([sys.executable, "-m", "circtoolkit"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 2 and "sandbox" in result.stderr
