"""The complete schema: the Slack tables plus every feature's tables, for Alembic and tests."""

from bolt_app.storage.tables import metadata

# Feature modules register their tables on the shared metadata when imported; import each here.

__all__ = ["metadata"]
