"""Feature services the listeners use, built once per app (see `app.create_app`).

Listeners receive them by name through Bolt's context: `FeaturesMiddleware` puts each service in
every request's context, and Bolt passes a context key to any listener argument of that name
(`def poll_command(ack, command, polls): ...`).

Each feature keeps its data per workspace (see `workspace.WorkspaceRef`) and registers what
uninstall must delete through `deletion_hooks`, which the installation store runs in the same
transaction as it deletes the workspace's installation.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Callable, Optional

from slack_bolt import BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from bolt_app.features.idempotency import Deliveries
    from bolt_app.features.polls import PollsFeature
    from bolt_app.storage.installation_store import WorkspaceDeletionHook
    from bolt_app.tokens.installed import InstallationGate


@dataclass
class Features:
    deliveries: "Deliveries"
    polls: "PollsFeature"

    def deletion_hooks(self) -> list["WorkspaceDeletionHook"]:
        return [self.polls.service.delete_workspace, self.deliveries.delete_workspace]


def build_features(engine: Engine, *, gate: Optional["InstallationGate"] = None) -> Features:
    """With `gate` (multi-workspace apps), rows are written only for installed workspaces."""
    from bolt_app.features.idempotency import Deliveries
    from bolt_app.features.polls import PollsFeature

    deliveries = Deliveries(engine, gate=gate)
    return Features(deliveries=deliveries, polls=PollsFeature(engine, deliveries))


class FeaturesMiddleware(Middleware):
    """Puts every feature service in the request's context, under its field name."""

    def __init__(self, features: Features):
        self.services = {field.name: getattr(features, field.name) for field in fields(features)}

    def process(self, *, req: BoltRequest, resp: BoltResponse,
                next: Callable[[], BoltResponse]) -> Optional[BoltResponse]:  # noqa: A002 - Bolt's name
        req.context.update(self.services)
        return next()
