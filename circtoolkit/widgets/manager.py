"""WebhookManager: see, create and delete webhooks from a notebook."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from ..client import CircularoClient
from ..errors import CircularoError
from ..models import Webhook
from .logic import check_callback_url, generate_secret, html_table, webhook_rows

__all__ = ["WebhookManager"]


class WebhookManager(widgets.VBox):
    """A table of the webhooks you can see, refresh, a create form, delete with a
    confirmation. API errors show as a message in the widget, never as a traceback."""

    def __init__(self, client: CircularoClient, **kwargs: Any) -> None:
        self.client = client
        self.webhooks: list[Webhook] = []
        self.whoami_error: str | None = None
        who = self._whoami()
        self.is_global_admin = who.get("user", {}).get("role") == "global_admin"
        organization = (who.get("user", {}).get("organization") or {})
        self.organizations = {organization["id"]: organization["name"]} if organization else {}
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.reveal = widgets.ToggleButton(description="reveal my secrets", value=False,
                                           icon="eye", tooltip="show the secrets you created")
        self.refresh_button = widgets.Button(description="refresh", icon="refresh")
        self.rows = widgets.VBox()
        self.delete_buttons: dict[str, widgets.Button] = {}
        self.pending_delete: str | None = None
        self.confirm_text = widgets.HTML()
        self.confirm_button = widgets.Button(description="yes, delete it",
                                             button_style="danger")
        self.cancel_button = widgets.Button(description="cancel")
        self.confirm_box = widgets.HBox([self.confirm_text, self.confirm_button,
                                         self.cancel_button],
                                        layout=widgets.Layout(display="none"))
        self.type_choice = widgets.Dropdown(
            description="type", options=["organization", "tenant"] if self.is_global_admin
            else ["organization"])
        self.organization = widgets.Text(description="organization", placeholder="Acme",
                                         layout=widgets.Layout(
                                             display="" if self.is_global_admin else "none"))
        self.callback_url = widgets.Text(description="callback URL",
                                         placeholder="https://your-server.example/hook",
                                         layout=widgets.Layout(width="480px"))
        self.secret = widgets.Password(description="HMAC secret")
        self.generate_button = widgets.Button(description="generate", icon="key")
        self.create_button = widgets.Button(description="create", button_style="primary",
                                            icon="plus")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.reveal.observe(lambda _: self._draw(), names="value")
        self.confirm_button.on_click(lambda _: self.confirm_delete())
        self.cancel_button.on_click(lambda _: self.cancel_delete())
        self.generate_button.on_click(lambda _: self.generate())
        self.create_button.on_click(lambda _: self.create())
        form = widgets.VBox([widgets.HTML("<b>Create a webhook</b>"), self.type_choice,
                             self.organization, self.callback_url,
                             widgets.HBox([self.secret, self.generate_button]),
                             self.create_button])
        controls = widgets.HBox([self.refresh_button, self.reveal])
        super().__init__([widgets.HTML("<h3>Webhooks</h3>"), controls, self.table, self.rows,
                          self.confirm_box, form, self.status], **kwargs)
        self.refresh()
        if self.whoami_error:
            self._report(f"could not read who you are (log in again?): {self.whoami_error}",
                         error=True)

    def _whoami(self) -> dict[str, Any]:
        try:
            return self.client.whoami()
        except CircularoError as exc:
            self.whoami_error = str(exc)
            return {}

    def _report(self, message: str, *, error: bool = False) -> None:
        colour = "#b00020" if error else "#1b5e20"
        self.status.value = f"<span style='color:{colour}'>{html.escape(message)}</span>"

    def _draw(self) -> None:
        rows = webhook_rows(self.webhooks, self.organizations, reveal=self.reveal.value)
        self.table.value = html_table(rows, empty="no webhooks yet")
        self.delete_buttons = {}
        lines = []
        for hook in self.webhooks:
            button = widgets.Button(description=f"delete {hook.id}", icon="trash",
                                    button_style="warning",
                                    layout=widgets.Layout(width="auto"))
            button.on_click(lambda _, webhook_id=hook.id: self.ask_delete(webhook_id))
            self.delete_buttons[hook.id] = button
            lines.append(button)
        self.rows.children = lines

    def refresh(self) -> None:
        """Read the webhooks again."""
        try:
            self.webhooks = list(self.client.list_webhooks())
        except CircularoError as exc:
            self._report(f"could not list webhooks: {exc}", error=True)
            return
        self._draw()
        self._report(f"{len(self.webhooks)} webhook(s)")

    def generate(self) -> None:
        """Fill the secret field with a fresh random secret."""
        self.secret.value = generate_secret()
        self._report("a fresh secret was generated (hidden here); after creating, "
                     "'reveal my secrets' shows it in the table to copy to your receiver")

    def create(self) -> Webhook | None:
        """Create a webhook from the form (the URL is checked first)."""
        problem = check_callback_url(self.callback_url.value)
        if problem:
            self._report(problem, error=True)
            return None
        name = self.organization.value.strip() or None
        try:
            webhook = self.client.create_webhook(
                self.callback_url.value.strip(), type=self.type_choice.value,
                hmac_secret=self.secret.value or None,
                name=name if self.is_global_admin and self.type_choice.value ==
                "organization" else None)
        except CircularoError as exc:
            self._report(f"could not create the webhook: {exc}", error=True)
            return None
        self.callback_url.value = ""
        self.secret.value = ""
        self.refresh()
        self._report(f"webhook {webhook.id} created")
        return webhook

    def ask_delete(self, webhook_id: str) -> None:
        """Ask for confirmation before deleting ``webhook_id`` (its row's button)."""
        self.pending_delete = webhook_id
        self.confirm_text.value = (f"Delete webhook <b>{html.escape(webhook_id)}</b>? "
                                   "Notifications stop at once.")
        self.confirm_box.layout.display = ""

    def cancel_delete(self) -> None:
        self.pending_delete = None
        self.confirm_box.layout.display = "none"
        self._report("nothing deleted")

    def confirm_delete(self) -> None:
        """Delete the webhook awaiting confirmation."""
        webhook_id, self.pending_delete = self.pending_delete, None
        self.confirm_box.layout.display = "none"
        if webhook_id is None:
            self._report("nothing to delete", error=True)
            return
        try:
            self.client.delete_webhook(webhook_id)
        except CircularoError as exc:
            self._report(f"could not delete {webhook_id}: {exc}", error=True)
            return
        self.refresh()
        self._report(f"webhook {webhook_id} deleted")
