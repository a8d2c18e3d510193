"""Dashboard: the webhook manager and the event monitor together, and one-click connect."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..client import CircularoClient
from ..errors import CircularoError
from ..listener import Listener
from ..models import EVENT_TYPES, Webhook
from .logic import generate_secret
from .manager import WebhookManager
from .monitor import EventMonitor

__all__ = ["Dashboard"]


class Dashboard(widgets.VBox):
    """Manage webhooks and watch a listener side by side. ``connect`` registers the
    listener's URL as a webhook with a fresh secret that the listener then accepts."""

    def __init__(self, client: CircularoClient, listener: Listener, *,
                 sandbox: Any = None, auto_refresh: bool = True, **kwargs: Any) -> None:
        self.client = client
        self.listener = listener
        self.sandbox = sandbox
        self.manager = WebhookManager(client)
        self.monitor = EventMonitor(listener, auto_refresh=auto_refresh)
        self.connect_button = widgets.Button(description="connect this listener",
                                             button_style="success", icon="plug")
        self.status = widgets.HTML()
        self.connected: Webhook | None = None
        self.connect_button.on_click(lambda _: self.connect())
        self.trigger_choice = widgets.Dropdown(options=list(EVENT_TYPES),
                                               value="documentCompleted",
                                               layout=widgets.Layout(width="260px"))
        self.trigger_button = widgets.Button(description="send a test event", icon="paper-plane")
        self.trigger_button.on_click(lambda _: self.trigger())
        header_items: list[widgets.Widget] = [
            widgets.HTML(f"Listener: <code>{html.escape(listener.url)}</code>"),
            self.connect_button]
        if sandbox is not None:  # the sandbox can send one on demand, like `stripe trigger`
            header_items += [self.trigger_choice, self.trigger_button]
        header = widgets.HBox(header_items)
        super().__init__([header, self.status, self.manager, self.monitor], **kwargs)

    def connect(self) -> Webhook | None:
        """Register ``listener.url`` as a webhook with a fresh secret (a tenant webhook
        for a global admin, else the admin's organization's)."""
        if self.connected is not None:  # a second webhook would deliver everything twice
            self.status.value = (f"already connected: webhook "
                                 f"{html.escape(self.connected.id)}")
            return self.connected
        secret = generate_secret()
        kind = "tenant" if self.manager.is_global_admin else "organization"
        try:
            webhook = self.client.create_webhook(self.listener.url, type=kind,
                                                 hmac_secret=secret)
        except CircularoError as exc:
            self.status.value = f"<span style='color:#b00020'>{html.escape(str(exc))}</span>"
            return None
        self.listener.add_secret(secret)
        self.connected = webhook
        self.manager.refresh()
        self.status.value = (f"connected: webhook {html.escape(webhook.id)} sends {kind} "
                             "events here, "
                             "signed with a fresh secret the listener now checks")
        return webhook

    def trigger(self) -> dict[str, Any] | None:
        """Have the sandbox send one event of the chosen type (sandbox only)."""
        if self.sandbox is None:
            self.status.value = "no sandbox: test events come from the sandbox only"
            return None
        organization = None if self.manager.is_global_admin else next(
            iter(self.manager.organizations.values()), None)
        sent = self.sandbox.trigger(self.trigger_choice.value, organization=organization)
        self.status.value = (f"sent {html.escape(sent['event'])} for document "
                             f"{html.escape(sent['documentId'][:8])}… to "
                             f"{sent['deliveries']} webhook(s)")
        return sent

    def close(self) -> None:
        self.monitor.close()
        super().close()
