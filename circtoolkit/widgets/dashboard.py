"""Dashboard: the webhook manager and the event monitor together, and one-click connect."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..client import CircularoClient
from ..errors import CircularoError
from ..listener import Listener
from ..models import Webhook
from .logic import generate_secret
from .manager import WebhookManager
from .monitor import EventMonitor

__all__ = ["Dashboard"]


class Dashboard(widgets.VBox):
    """Manage webhooks and watch a listener side by side. ``connect`` registers the
    listener's URL as a webhook with a fresh secret that the listener then accepts."""

    def __init__(self, client: CircularoClient, listener: Listener, *,
                 auto_refresh: bool = True, **kwargs: Any) -> None:
        self.client = client
        self.listener = listener
        self.manager = WebhookManager(client)
        self.monitor = EventMonitor(listener, auto_refresh=auto_refresh)
        self.connect_button = widgets.Button(description="connect this listener",
                                             button_style="success", icon="plug")
        self.status = widgets.HTML()
        self.connected: Webhook | None = None
        self.connect_button.on_click(lambda _: self.connect())
        header = widgets.HBox([widgets.HTML(f"Listener: <code>{html.escape(listener.url)}</code>"),
                               self.connect_button])
        super().__init__([header, self.status,
                          widgets.HBox([self.manager, self.monitor])], **kwargs)

    def connect(self) -> Webhook | None:
        """Register ``listener.url`` as a webhook with a fresh secret (a tenant webhook
        for a global admin, else the admin's organization's)."""
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
        self.status.value = (f"connected: webhook {webhook.id} sends {kind} events here, "
                             "signed with a fresh secret the listener now checks")
        return webhook

    def close(self) -> None:
        self.monitor.close()
        super().close()
