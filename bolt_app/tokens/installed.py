"""Whether a workspace is installed, as the database says at the moment it matters.

Several processes (gunicorn workers, hosts) serve the same installations, each with its own
authorize cache. An uninstall or a token revocation is committed by one of them; from then on no
process may post with the removed tokens or store rows for that workspace. No process trusts its
cache for that (see docs/decisions/0002-uninstall-across-processes.md):

- `InstallationGate`: a transaction that inserts a workspace's rows first reads that workspace's
  bot row under a share lock. The uninstall transaction deletes that row first, so the database
  orders the two: the writer either commits before the uninstall (whose deletes then remove its
  rows too) or finds the row gone and writes nothing.
- `InstalledOnlyClient`: the Web API client every listener gets checks, immediately before each
  call, that the token's installation row still holds a usable token (one primary-key read); a
  call for a removed installation is refused here and never reaches Slack. (During a database
  outage the check cannot be made and the call goes ahead, as acknowledged work always has.)
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Optional

import sqlalchemy as sa
from slack_sdk import WebClient
from slack_sdk.web import SlackResponse
from sqlalchemy.engine import Connection, Engine

from bolt_app.database import share_rows
from bolt_app.shared import SharedService
from bolt_app.storage import tables
from bolt_app.storage.tables import STATUS_OK
from bolt_app.tokens.rotation import TokenError

logger = logging.getLogger(__name__)


class WorkspaceNotInstalled(TokenError):
    """No usable installation for the workspace a request or a piece of work is for.

    Raised by authorize (so Bolt never takes its own "installation no longer available" path,
    which posts to the request's response_url while the request waits), by the gate of feature
    writes and by the installed-only client; the app's error handler answers 200.
    """

    def __init__(self, workspace_key: Optional[str], detail: str = "not installed"):
        self.workspace_key = workspace_key
        super().__init__(f"workspace {workspace_key}: {detail}")


_bot = tables.bots.c
_user = tables.installations.c
# Built once (SQLAlchemy caches their compiled form).
_BOT_IN_USE = sa.select(_bot.workspace_key).where(
    _bot.client_id == sa.bindparam("client_id"), _bot.workspace_key == sa.bindparam("key"),
    _bot.status == STATUS_OK, _bot.bot_token.is_not(None),
)
_USER_IN_USE = sa.select(_user.user_id).where(
    _user.client_id == sa.bindparam("client_id"), _user.workspace_key == sa.bindparam("key"),
    _user.user_id == sa.bindparam("user_id"), _user.status == STATUS_OK, _user.user_token.is_not(None),
)


_BOTS_INSTALLED = sa.select(_bot.workspace_key).where(
    _bot.client_id == sa.bindparam("client_id"), _bot.workspace_key.in_(sa.bindparam("keys", expanding=True)),
    _bot.status == STATUS_OK, _bot.bot_token.is_not(None),
).order_by(_bot.workspace_key)  # one lock order for everyone: two writers never lock crosswise


class InstallationGate(SharedService):
    """Feature writes for a workspace hold its installation row for the length of their transaction."""

    def __init__(self, client_id: str):
        self.client_id = client_id
        # Told about each workspace found uninstalled (authorize drops its cached entry).
        self.removed_listeners: list[Callable[[str], None]] = []
        self._statements: dict[str, sa.Select] = {}  # per dialect, built once

    def installed(self, conn: Connection, keys: Iterable[str]) -> set[str]:
        """The `keys` whose installation has a usable bot token, each row share-locked until `conn`'s
        transaction ends (call first in a write transaction, before any other lock)."""
        wanted = set(keys)
        if not wanted:
            return set()
        engine: Engine = conn.engine
        statement = self._statements.get(engine.dialect.name)
        if statement is None:
            statement = self._statements[engine.dialect.name] = share_rows(engine, _BOTS_INSTALLED)
        found = set(conn.execute(statement, {"client_id": self.client_id, "keys": sorted(wanted)}).scalars())
        for key in set(wanted) - found:
            for listener in self.removed_listeners:
                listener(key)
        return found

    def require(self, conn: Connection, key: str) -> None:
        """Raise `WorkspaceNotInstalled` unless `key` is installed; otherwise hold it (see `installed`)."""
        if key not in self.installed(conn, (key,)):
            raise WorkspaceNotInstalled(key, "uninstalled or revoked; nothing written")


class InstalledTokens(SharedService):
    """Reads, right before a Web API call, whether the token's installation still holds it."""

    def __init__(self, engine: Engine, client_id: str):
        # One statement, no transaction around it (like the authorize reads).
        self.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.client_id = client_id
        # Told about each installation found removed (authorize drops its cached entry).
        self.removed_listeners: list[Callable[[str], None]] = []

    def check(self, key: str, user_id: Optional[str]) -> None:
        """Raise `WorkspaceNotInstalled` when the installation no longer holds the token.

        When the database cannot answer, the call goes ahead: authorize found the token installed
        moments ago, the work was acknowledged and Slack will not resend it (an uninstall cannot be
        committed through an outage this process shares; Slack itself refuses a removed token).
        """
        params = {"client_id": self.client_id, "key": key}
        statement = _BOT_IN_USE if user_id is None else _USER_IN_USE
        if user_id is not None:
            params["user_id"] = user_id
        try:
            with self.read_engine.connect() as conn:
                found = conn.execute(statement, params).first()
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as error:
            logger.warning("Could not check that %s is still installed (%s); calling Slack anyway", key,
                           type(error).__name__)
            return
        if found is None:
            for listener in self.removed_listeners:
                listener(key)
            raise WorkspaceNotInstalled(key, "the token was removed; the call was not made")


class InstalledOnlyClient(WebClient):
    """A WebClient whose every call first checks that its token's installation still holds it.

    `owners` maps each token the client may carry to (workspace key, user id or None for the bot).
    A token not in it is refused: nothing unknown is sent.
    """

    def __init__(self, *, installed: InstalledTokens, owners: dict[str, tuple[str, Optional[str]]], **kwargs: Any):
        super().__init__(**kwargs)
        self.installed = installed
        self.owners = owners

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:  # type: ignore[override]
        owner = self.owners.get(self.token or "")
        if owner is None:
            raise WorkspaceNotInstalled(None, f"a call to {api_method} with a token of no known installation")
        self.installed.check(*owner)
        return super().api_call(api_method, **kwargs)

    @classmethod
    def like(cls, client: WebClient, *, installed: InstalledTokens, owners: dict[str, tuple[str, Optional[str]]],
             token: Optional[str] = None) -> "InstalledOnlyClient":
        """A copy of `client` (same base URL, timeout, proxy, headers, team, retry handlers)."""
        return cls(
            installed=installed,
            owners=owners,
            token=token if token is not None else client.token,
            base_url=client.base_url,
            timeout=client.timeout,
            ssl=client.ssl,
            proxy=client.proxy,
            headers=client.headers,
            team_id=(client.default_params or {}).get("team_id"),
            logger=client.logger,
            retry_handlers=list(client.retry_handlers or []),
        )
