"""The ``circtoolkit`` command: ``sandbox`` (an offline Circularo) and ``demo``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from . import __version__
from ._redact import mask
from .client import CircularoClient, Exchange
from .errors import CircularoError
from .models import format_timestamp

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = ["main"]

SEED_CALLBACK_URL = "https://your-server.example/webhook-endpoint"
SEED_HMAC_SECRET = "YourSecretKey123!"  # noqa: S105 - the seed's own placeholder, masked in output


def _print_accounts(out: TextIO) -> None:
    from .sandbox import ACCOUNTS, DEMO_PASSWORD

    print(f"Demo accounts (password '{DEMO_PASSWORD}'):", file=out)
    width = max(len(account.username) for account in ACCOUNTS)
    for account in ACCOUNTS:
        print(f"  {account.username:<{width}}  {account.describe()}", file=out)


def _duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds * 1000:g} ms"


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
    from .sandbox import DEFAULT_RETRY_SCHEDULE, FAST_RETRY_SCHEDULE

    schedule = FAST_RETRY_SCHEDULE if args.fast_retries else DEFAULT_RETRY_SCHEDULE
    sandbox = Sandbox(host=args.host, port=args.port, db=args.db, token_ttl=args.token_ttl,
                      retry_schedule=schedule)
    sandbox.start()
    print(f"circtoolkit sandbox {__version__}: offline Circularo API at {sandbox.url}", file=out)
    print(f"OpenAPI: {sandbox.url}/openapi.json", file=out)
    print(f"State: {args.db or 'in memory (use --db FILE to keep it)'}", file=out)
    retries = ("fast: " if args.fast_retries else "") + ", ".join(
        _duration(delay) for delay in schedule)
    print(f"Delivery retries after: {retries}", file=out)
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
    """Walk the seed's steps 1 to 3 against an in-process sandbox, then receive."""
    from .sandbox import DEMO_PASSWORD, FAST_RETRY_SCHEDULE, Sandbox

    with Sandbox(retry_schedule=FAST_RETRY_SCHEDULE) as sandbox:
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

            client.on_exchange = None
            _receive_notifications(sandbox, client, out, documents=args.documents,
                                   seed=args.seed)
            client.logout()
    print("\nDone. Next: `circtoolkit sandbox` to keep one running, `make lab` for the "
          "notebooks.", file=out, flush=True)
    return 0


def _receive_notifications(sandbox: Sandbox, client: CircularoClient, out: TextIO, *,
                           documents: int, seed: int) -> None:
    """Step 4: a Listener, a short simulation, and every notification that arrived."""
    from .listener import Listener

    _heading("Step 4 - Receive notifications", out)
    with Listener(SEED_HMAC_SECRET) as listener:
        webhook = client.create_webhook(listener.url, hmac_secret=SEED_HMAC_SECRET)
        print(f"A Listener at {listener.url} verifies x-circularo-signature and keeps every "
              f"request.\nWebhook {webhook.id} points at it (secret "
              f"{mask(SEED_HMAC_SECRET, keep=0)}).", file=out)
        print(f"Simulating {documents} documents of Acme, signed by its users...\n",
              file=out, flush=True)
        report = sandbox.simulate(documents=documents, seed=seed, organization="Acme",
                                  progress=False)
        sandbox.wait_for_deliveries(timeout=60)
        listener.wait_for(report.deliveries, timeout=30)
        received = listener.events
        verdicts = {(format_timestamp(row.timestamp), str(row.event), row.actor,
                     row.documentId): bool(row.verified) for row in received.itertuples()}
        # arrival order is not emission order: show them in the order they happened
        print(f"{'timestamp':<25} {'event':<29} {'document':<10} {'actor':<18} signature",
              file=out)
        good = 0
        for event in sandbox.events().itertuples():
            stamp = format_timestamp(event.timestamp)
            verified = verdicts.get((stamp, str(event.event), event.actor, event.document_id))
            if verified is None:
                continue
            good += verified
            print(f"{stamp:<25} {event.event:<29} {event.document_id[:8]:<10} "
                  f"{event.actor:<18} {'verified' if verified else 'INVALID'}", file=out)
        outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(report.outcomes.items()))
        print(f"\n{len(received)} notifications arrived, {good} verified; "
              f"documents: {outcomes}.", file=out, flush=True)
        client.delete_webhook(webhook)


SECRET_ENVIRONMENT = "CIRCTOOLKIT_SECRET"  # noqa: S105 - a variable name, not a secret


def _secrets(given: list[str] | None) -> list[str] | None:
    """--secret values, else the environment's (one per line), else None."""
    if given:
        return given
    from_environment = os.environ.get(SECRET_ENVIRONMENT, "")
    found = [line for line in from_environment.splitlines() if line]
    return found or None


def cmd_listen(args: argparse.Namespace, out: TextIO) -> int:
    """Receive webhooks in the foreground, a line per request, until Ctrl-C or SIGTERM."""
    from .listener import Listener

    secrets = _secrets(args.secret)
    listener = Listener(secrets, host=args.host, port=args.port, path=args.path, db=args.db,
                        forward_to=args.forward_to, relay=args.relay, max_body=args.max_body,
                        tolerance=args.tolerance)
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def describe(request: dict) -> None:
        stamp = time.strftime("%H:%M:%S")
        if request["verdict"] == "rejected":
            lines.put(f"{stamp}  {request['status']} rejected: {request['reason']}")
            return
        mark = ("verified" if request["verified"] else "unverified")
        again = "  (again)" if request["verdict"] == "duplicate" else ""
        lines.put(f"{stamp}  {request['status']} {request['event']:<28} "
                  f"{request['documentId'][:8]:<9} {request['actor']:<24} {mark} "
                  f"#{request['event_id']}{again}")

    if not args.quiet:
        listener.on_request(describe)
    listener.start()
    print(f"circtoolkit listen {__version__}: webhook callback URL {listener.url}", file=out)
    if args.relay:
        print(f"(through the relay; received locally at {listener.local_url})", file=out)
    checks = (f"signatures checked against {len(secrets)} secret(s)" if secrets
              else "no secret: events are accepted unverified")
    print(f"{checks}; stored {'in ' + args.db if args.db else 'in memory (use --db FILE)'}",
          file=out)
    if args.forward_to:
        print(f"forwarding to {args.forward_to}", file=out)
    print("Press Ctrl-C to stop.", file=out, flush=True)

    def alive() -> bool:
        while True:
            try:
                print(lines.get_nowait(), file=out, flush=True)
            except queue.Empty:
                return listener.is_running

    status = _wait_for_signal(alive)
    listener.stop()
    alive()
    print(f"listener stopped; {listener.store.counts()['accepted']} events held", file=out,
          flush=True)
    return status


def cmd_relay(args: argparse.Namespace, out: TextIO) -> int:
    """Serve a relay in the foreground until Ctrl-C or SIGTERM."""
    from .relay import Relay

    relay = Relay(host=args.host, port=args.port, db=args.db)
    relay.start()
    print(f"circtoolkit relay {__version__} at {relay.url}", file=out)
    print(f"listeners: circtoolkit listen --relay {relay.url} (a channel is made and "
          "remembered in --db); senders: the channel's inbox URL", file=out)
    print("Press Ctrl-C to stop.", file=out, flush=True)
    status = _wait_for_signal(lambda: relay.is_running)
    relay.stop()
    print("relay stopped", file=out, flush=True)
    return status


def _server_options(parser: argparse.ArgumentParser, *, port: int, keeps: str) -> None:
    """--host, --port and --db, as every serving command has them."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=port, help=f"port ({port}; 0 picks one)")
    parser.add_argument("--db", default=None, metavar="PATH",
                        help=f"SQLite file that keeps {keeps} across restarts")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``circtoolkit`` command."""
    parser = argparse.ArgumentParser(
        prog="circtoolkit",
        description="Manage, receive and analyse Circularo webhooks; run an offline sandbox.")
    parser.add_argument("--version", action="version", version=f"circtoolkit {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sandbox = commands.add_parser("sandbox", help="serve an offline Circularo API",
                                  description="Serve an offline Circularo API under /api/v1.")
    _server_options(sandbox, port=8000, keeps="webhooks, keys, tokens and deliveries")
    sandbox.add_argument("--token-ttl", type=float, default=3600.0, metavar="SECONDS",
                         help="session tokens expire this long after their last use (3600)")
    sandbox.add_argument("--fast-retries", action="store_true",
                         help="retry failed deliveries within seconds, not days (for demos)")
    sandbox.add_argument("--quiet", action="store_true", help="do not log each request")
    sandbox.set_defaults(handler=cmd_sandbox)

    listen = commands.add_parser(
        "listen", help="receive webhooks: verify, store, print a line per request",
        description="Receive Circularo webhooks, verify their signatures and store every "
                    f"request. Secrets may also come from ${SECRET_ENVIRONMENT} (one per line), "
                    "which keeps them out of the process list.")
    _server_options(listen, port=8001, keeps="every request")
    listen.add_argument("--path", default="/", help="the callback path (/)")
    listen.add_argument("--secret", action="append", metavar="S",
                        help="HMAC secret; repeat for rotation")
    listen.add_argument("--forward-to", default=None, metavar="URL",
                        help="pass each accepted request on to this local app")
    listen.add_argument("--relay", default=None, metavar="URL",
                        help="receive through a relay: its root URL (a channel is made and "
                             "remembered in --db) or a channel's listen URL")
    listen.add_argument("--tolerance", type=float, default=None, metavar="SECONDS",
                        help="reject notifications whose timestamp is further from now")
    listen.add_argument("--max-body", type=int, default=1024 * 1024, metavar="BYTES",
                        help="largest body accepted (1 MiB)")
    listen.add_argument("--quiet", action="store_true", help="do not print each request")
    listen.set_defaults(handler=cmd_listen)

    relay = commands.add_parser(
        "relay", help="serve a tunnel-style relay for listeners with no public address",
        description="Serve a relay: senders POST to a channel's inbox, listeners read the "
                    "channel's stream with its read key.")
    _server_options(relay, port=8002, keeps="channels and messages")
    relay.set_defaults(handler=cmd_relay)

    demo = commands.add_parser("demo", help="walk the seed's webhook steps on the sandbox",
                               description="Create, list and delete a webhook on an "
                                           "in-process sandbox, printing every call.")
    demo.add_argument("--documents", type=int, default=5, metavar="N",
                      help="documents to simulate in step 4 (5)")
    demo.add_argument("--seed", type=int, default=7, help="the simulation's seed (7)")
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

