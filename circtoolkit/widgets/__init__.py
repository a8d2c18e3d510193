"""ipywidgets for notebooks: manage webhooks, watch events, test signatures.

Widgets depend on the core (client, listener), never the reverse; their logic lives in
``circtoolkit.widgets.logic`` as plain functions.
"""

from .dashboard import Dashboard
from .manager import WebhookManager
from .monitor import EventMonitor
from .tester import SignatureTester

__all__ = ["Dashboard", "EventMonitor", "SignatureTester", "WebhookManager"]
