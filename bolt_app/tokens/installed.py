"""Whether a workspace is installed, as the database says at the moment it matters."""

from __future__ import annotations

from typing import Optional

from bolt_app.tokens.rotation import TokenError


class WorkspaceNotInstalled(TokenError):
    """No usable installation for the workspace a request or a piece of work is for.

    Raised by authorize (so Bolt never takes its own "installation no longer available" path,
    which posts to the request's response_url while the request waits) and answered 200 by the
    app's error handler.
    """

    def __init__(self, workspace_key: Optional[str], detail: str = "not installed"):
        self.workspace_key = workspace_key
        super().__init__(f"workspace {workspace_key}: {detail}")
