"""The ``circtoolkit`` command: ``sandbox`` (an offline Circularo) and ``demo``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TextIO

from . import __version__
from .client import CircularoClient, Exchange
from .errors import CircularoError

__all__ = ["main"]

SEED_CALLBACK_URL = "https://your-server.example/webhook-endpoint"
SEED_HMAC_SECRET = "YourSecretKey123!"  # noqa: S105 - the seed's own placeholder, masked in output


def _print_accounts(out: TextIO) -> None:
    from .sandbox import ACCOUNTS, DEMO_PASSWORD

    print(f"Demo accounts (password '{DEMO_PASSWORD}'):", file=out)
    width = max(len(account.username) for account in ACCOUNTS)
    for account in ACCOUNTS:
        print(f"  {account.username:<{width}}  {account.describe()}", file=out)


def _wait_for_signal(is_alive: Callable[[], bool]) -> int:
    """Block until SIGINT or SIGTERM (returns 0) or until the server dies (returns 1)."""
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        received.append(signum)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stop.wait(0.2):
            if not is_alive():
                return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def cmd_sandbox(args: argparse.Namespace, out: TextIO) -> int:
    """Serve the sandbox in the foreground until Ctrl-C or SIGTERM."""
    from .sandbox import Sandbox

    logging.basicConfig(level=logging.INFO if not args.quiet else logging.WARNING,
                        format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=out)
    sandbox = Sandbox(host=args.host, port=args.port, db=args.db, token_ttl=args.token_ttl)
    sandbox.start()
    print(f"circtoolkit sandbox {__version__}: offline Circularo API at {sandbox.url}", file=out)
    print(f"OpenAPI: {sandbox.url}/openapi.json", file=out)
    print(f"State: {args.db or 'in memory (use --db FILE to keep it)'}", file=out)
    _print_accounts(out)
    print("Press Ctrl-C to stop.", file=out, flush=True)
    status = _wait_for_signal(lambda: sandbox.is_running)
    sandbox.stop()
    print("sandbox stopped" if status == 0 else "sandbox died", file=out, flush=True)
    return status


class _ExchangePrinter:
    """Prints each API call the way the seed document shows them, secrets masked."""

    def __init__(self, base_url: str, out: TextIO) -> None:
        self.base_url = base_url
        self.out = out

    def __call__(self, exchange: Exchange) -> None:
        path = exchange.url.removeprefix(self.base_url)
        print(f"{exchange.method} {path}", file=self.out)
        if exchange.request_body is not None:
            print("Content-Type: application/json", file=self.out)
            print(json.dumps(exchange.request_body, indent=2), file=self.out)
        print(f"Response {exchange.status}", file=self.out)
        print(json.dumps(exchange.response_body, indent=2), file=self.out, flush=True)


def _heading(text: str, out: TextIO) -> None:
    print(f"\n{text}\n{'-' * len(text)}", file=out)


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """Walk the seed's steps 1 to 3 against an in-process sandbox."""
    from .sandbox import DEMO_PASSWORD, Sandbox

    with Sandbox() as sandbox:
        print(f"Sandbox (offline Circularo) running at {sandbox.url}", file=out)
        printer = _ExchangePrinter(sandbox.url, out)
        _heading("Log in as admin@acme.test (organization admin of Acme)", out)
        client = CircularoClient.login(sandbox.url, "admin@acme.test", DEMO_PASSWORD,
                                       on_exchange=printer)
        with client:
            _heading("Step 1 - Create a Webhook", out)
            webhook = client.create_webhook(SEED_CALLBACK_URL, hmac_secret=SEED_HMAC_SECRET)
            print(f"\nWebhook created with ID: {webhook.id}", file=out)

            _heading("Step 2 - Retrieve Existing Webhooks", out)
            webhooks = client.list_webhooks()
            print(f"\nFound {webhooks.total} webhooks", file=out)
            for item in webhooks:
                print(f"  {item.id}  {item.type}  {item.callback_url}  by {item.creator}",
                      file=out)

            _heading("Step 3 - Delete a Webhook", out)
            client.delete_webhook(webhook.id)
            print("\nWebhook deleted successfully: SUCCESS", file=out)
            client.logout()
    print("\nDone. Next: `circtoolkit sandbox` to keep one running, `make lab` for the "
          "notebooks.", file=out, flush=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``circtoolkit`` command."""
    parser = argparse.ArgumentParser(
        prog="circtoolkit",
        description="Manage, receive and analyse Circularo webhooks; run an offline sandbox.")
    parser.add_argument("--version", action="version", version=f"circtoolkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sandbox = commands.add_parser("sandbox", help="serve an offline Circularo API",
                                  description="Serve an offline Circularo API under /api/v1.")
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8000, help="port (8000; 0 picks a free one)")
    sandbox.add_argument("--db", default=None, metavar="PATH",
                         help="SQLite file that keeps webhooks, keys and tokens across restarts")
    sandbox.add_argument("--token-ttl", type=float, default=3600.0, metavar="SECONDS",
                         help="session tokens expire this long after their last use (3600)")
    sandbox.add_argument("--quiet", action="store_true", help="do not log each request")
    sandbox.set_defaults(handler=cmd_sandbox)

    demo = commands.add_parser("demo", help="walk the seed's webhook steps on the sandbox",
                               description="Create, list and delete a webhook on an "
                                           "in-process sandbox, printing every call.")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    stream = out or sys.stdout
    handler: Callable[[argparse.Namespace, TextIO], int] = args.handler
    try:
        return handler(args, stream)
    except CircularoError as exc:
        print(f"circtoolkit: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"circtoolkit: error: {exc.strerror or exc}", file=sys.stderr)
        return 1

