"""The dashboard in a real JupyterLab under headless Chromium, used as a person would.

JupyterLab runs on a free loopback port with a temporary token, settings, workspace and
a copy of notebooks/04-dashboard.ipynb; Playwright drives Debian's Chromium. Each step
saves a screenshot under the test's artifacts folder; the last one also goes to docs/.
Outside CI without Chromium the suite skips, saying why; with CI=true it must run.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
NOTEBOOK = "04-dashboard.ipynb"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError(f"{CHROMIUM} is missing in CI: `make test` installs it as root")
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A JupyterLab of its own; yields the notebook's URL (token included)."""
    home = tmp_path_factory.mktemp("lab")
    work = home / "work"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)
    notifications = home / "settings" / "@jupyterlab" / "apputils-extension"
    notifications.mkdir(parents=True)
    (notifications / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')  # no news pop-up over the widgets
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"))
    env.pop("JUPYTER_PATH", None)
    env["JUPYTER_PATH"] = str(Path(sys.prefix) / "share" / "jupyter")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root",
         f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--ServerApp.port_retries=0", "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=False"],
        env=env, stdout=subprocess.DEVNULL, stderr=(home / "lab.log").open("w"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((home / "lab.log").read_text()[-3000:]) from None
            time.sleep(0.3)
    try:
        yield f"{base}/lab/tree/{NOTEBOOK}?token={token}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def artifacts() -> Path:
    folder = ROOT / "test-artifacts" / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def widget_input(page, label: str):
    return page.locator(f".widget-text:has(label:text-is('{label}')) input").first


def test_the_dashboard_works_in_a_browser(lab: str, artifacts: Path) -> None:
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"])
        page = browser.new_page(viewport={"width": 1600, "height": 1300})
        shots = iter(range(1, 100))

        def shot(name: str) -> Path:
            path = artifacts / f"{next(shots):02d}-{name}.png"
            page.screenshot(path=str(path), full_page=True)
            return path

        try:
            _use_the_dashboard(page, lab, shot)
            final = shot("webhook-deleted")
        except Exception:
            shot("failure")  # what the page looked like: in the artifacts folder
            raise
        finally:
            browser.close()
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    shutil.copy(final, docs / "dashboard.png")


def _use_the_dashboard(page, lab: str, shot) -> None:
    """Open the notebook, run it, and use the dashboard as a person would."""
    page.goto(lab, wait_until="domcontentloaded")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    # the kernel must be up before "Run All Cells", or nothing runs
    page.locator(".jp-StatusBar-TextItem:has-text('Idle')").first.wait_for(
        timeout=60_000)
    page.get_by_role("menuitem", name="Run").click()
    page.get_by_role("menuitem", name=re.compile("^Run All Cells")).click()
    connect = page.locator("button:has-text('connect this listener')")
    connect.wait_for(timeout=90_000)
    shot("rendered")

    # one click connects the listener; a test event then raises the counters
    connect.click()
    page.locator(".widget-html:has-text('connected: webhook')").wait_for(timeout=20_000)
    page.locator("button:has-text('send a test event')").click()
    page.locator(".widget-html:has-text('documentCompleted')").filter(
        has_text=re.compile(r"\d+")).first.wait_for(timeout=20_000)
    before = page.locator(".widget-html:has-text('verified')").first.inner_text()
    page.locator("button:has-text('send a test event')").click()
    page.wait_for_function(
        "before => [...document.querySelectorAll('.widget-html')].some("
        "e => e.innerText.includes('verified') && e.innerText !== before)",
        arg=before, timeout=20_000)
    shot("events-arrived")

    # a webhook made through the form appears in the table
    widget_input(page, "callback URL").fill("https://hooks.example/from-the-browser")
    page.locator("button:has-text('generate')").click()
    page.locator("button:has-text('create')").click()
    page.locator(".widget-html:has-text('https://hooks.example/from-the-browser')"
                 ).first.wait_for(timeout=20_000)
    shot("webhook-created")

    # a bad URL gets a readable message, not a traceback
    widget_input(page, "callback URL").fill("ftp://files.example/drop")
    page.locator("button:has-text('create')").click()
    page.locator(".widget-html:has-text('must start with http:// or https://')"
                 ).wait_for(timeout=20_000)
    assert page.locator("text=Traceback").count() == 0
    shot("readable-error")

    # delete it through the confirmation step
    row = page.locator(".widget-html table tr:has-text('from-the-browser') td").first
    webhook_id = row.inner_text().strip()
    page.locator(f"button:has-text('delete {webhook_id}')").click()
    page.locator(f"button:has-text('yes, delete {webhook_id}')").click() \
        if page.locator(f"button:has-text('yes, delete {webhook_id}')").count() \
        else page.locator("button:has-text('yes, delete it')").click()
    page.locator(f".widget-html:has-text('webhook {webhook_id} deleted')").wait_for(
        timeout=20_000)
    assert page.locator(".widget-html table:has-text('from-the-browser')").count() == 0
