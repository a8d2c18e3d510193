"""SignatureTester: body and secret in, signature out, and a verdict, for training."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from ..errors import ConfigurationError
from ..signing import sign, verify

__all__ = ["SignatureTester"]

_EXAMPLE = ('{"documentId":"e2461c31-9d65-472d-8d85-90bcefbac3f7","event":"documentCompleted",'
            '"actor":"john.smith@example.com","timestamp":"2023-07-19T12:30:00.152Z"}')


class SignatureTester(widgets.VBox):
    """Compute ``x-circularo-signature`` for a body, or check a given one."""

    def __init__(self, **kwargs: Any) -> None:
        self.body = widgets.Textarea(value=_EXAMPLE, description="body",
                                     layout=widgets.Layout(width="640px", height="90px"))
        self.secret = widgets.Password(description="secret")
        self.signature = widgets.Text(description="signature",
                                      layout=widgets.Layout(width="640px"))
        self.sign_button = widgets.Button(description="sign", icon="pencil")
        self.verify_button = widgets.Button(description="verify", icon="check")
        self.verdict = widgets.HTML()
        self.sign_button.on_click(lambda _: self.compute())
        self.verify_button.on_click(lambda _: self.check())
        super().__init__([widgets.HTML("<h3>Signature tester</h3>"), self.body, self.secret,
                          widgets.HBox([self.sign_button, self.verify_button]),
                          self.signature, self.verdict], **kwargs)

    def compute(self) -> None:
        """Fill in the signature of the body under the secret (UTF-8 bytes, as sent)."""
        try:
            self.signature.value = sign(self.body.value.encode("utf-8"), self.secret.value)
        except ConfigurationError as exc:
            self.verdict.value = f"<span style='color:#b00020'>{exc}</span>"
            return
        self.verdict.value = "signature computed: this is what x-circularo-signature carries"

    def check(self) -> bool:
        """Whether the signature matches the body under the secret; the verdict shows it."""
        try:
            good = verify(self.body.value.encode("utf-8"), self.signature.value,
                          self.secret.value)
        except ConfigurationError as exc:
            self.verdict.value = f"<span style='color:#b00020'>{exc}</span>"
            return False
        self.verdict.value = ("<span style='color:#1b5e20'>✔ valid: the body is authentic</span>"
                              if good else "<span style='color:#b00020'>✘ invalid: a wrong "
                              "secret, or the body was changed (even one space)</span>")
        return good
