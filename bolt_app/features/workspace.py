"""The workspace a request belongs to, as Bolt resolved it, and transient-error retries.

Feature data is keyed by the installation that Bolt's `authorize` resolved for the request
(`context.enterprise_id`, `context.team_id`, `context.is_enterprise_install`), never by ids
read from elsewhere in a payload. The key is the same string the installation store uses
(`storage.tables.workspace_key`): an org-wide install keys its data by the enterprise, so a
poll posted in one workspace of the org can be voted on from a channel shared with another,
and uninstalling removes exactly what that installation owns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, TypeVar

import sqlalchemy as sa

from bolt_app.storage.tables import workspace_key
from bolt_app.tokens.authorize import INSTALLATION_IS_ORG_WIDE

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class WorkspaceRef:
    enterprise_id: Optional[str]
    team_id: Optional[str]
    is_enterprise_install: bool = False

    @property
    def key(self) -> str:
        return workspace_key(self.enterprise_id, None if self.is_enterprise_install else self.team_id)

    @classmethod
    def from_context(cls, context: Any) -> "WorkspaceRef":
        """From Bolt's `BoltContext`: the installation authorize resolved for the request.

        The enterprise and the org-wide flag come from the installation itself when authorize
        gave them (the body's can be another organization's: a Slack Connect visitor submitting
        the app's modal); the team is Bolt's, which for a view is the installing team.
        """
        result = context.authorize_result
        if result is not None and INSTALLATION_IS_ORG_WIDE in result:
            return cls(enterprise_id=result.enterprise_id, team_id=context.team_id,
                       is_enterprise_install=bool(result[INSTALLATION_IS_ORG_WIDE]))
        return cls(
            enterprise_id=context.enterprise_id,
            team_id=context.team_id,
            is_enterprise_install=bool(context.is_enterprise_install),
        )


def is_transient(error: BaseException) -> bool:
    """A deadlock, serialization failure or busy database: the whole transaction can be re-run."""
    if not isinstance(error, sa.exc.DBAPIError):
        return False
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None)  # psycopg
    if sqlstate in ("40P01", "40001", "55P03"):
        return True
    args = getattr(orig, "args", ())
    if args and args[0] in (1205, 1213):  # MySQL/MariaDB: lock wait timeout, deadlock
        return True
    return "database is locked" in str(orig)  # SQLite busy beyond busy_timeout


def retry_transient(work: Callable[[], T], attempts: int = 4) -> T:
    """Run a transaction function, re-running it when the database asks for a retry.

    Safe only for functions that do all their writes in one transaction (a rollback undoes
    everything, and idempotency keys are inserted in that same transaction).
    """
    for attempt in range(attempts):
        try:
            return work()
        except sa.exc.DBAPIError as error:
            if attempt == attempts - 1 or not is_transient(error):
                raise
            logger.info("Transient database error, retrying the transaction: %s", type(error.orig).__name__)
            time.sleep(0.05 * (2**attempt))
    raise AssertionError("unreachable")
