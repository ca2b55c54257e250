"""The complete schema: the Slack tables plus every feature's tables, for Alembic and tests."""

from bolt_app.storage.tables import metadata

# Feature modules register their tables on the shared metadata when imported; import each here.
import bolt_app.features.idempotency  # noqa: E402,F401 - processed_deliveries
import bolt_app.features.polls.tables  # noqa: E402,F401 - polls, poll_options, poll_votes

__all__ = ["metadata"]
