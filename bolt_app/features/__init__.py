"""Feature services the listeners use, built once per app (see `app.create_app`).

Each feature keeps its data per workspace (see `workspace.WorkspaceRef`) and registers what
uninstall must delete through `deletion_hooks`, which the installation store runs in the same
transaction as it deletes the workspace's installation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from bolt_app.features.idempotency import Deliveries
    from bolt_app.features.polls import PollsFeature
    from bolt_app.storage.installation_store import WorkspaceDeletionHook


@dataclass
class Features:
    deliveries: "Deliveries"
    polls: "PollsFeature"

    def deletion_hooks(self) -> list["WorkspaceDeletionHook"]:
        return [self.polls.service.delete_workspace, self.deliveries.delete_workspace]


def build_features(engine: Engine) -> Features:
    from bolt_app.features.idempotency import Deliveries
    from bolt_app.features.polls import PollsFeature

    deliveries = Deliveries(engine)
    return Features(deliveries=deliveries, polls=PollsFeature(engine, deliveries))
