"""Poll tables, on the shared metadata (migration 0002).

Every table leads its primary key with `workspace_key` (the installation's key, as in
`storage.tables`): rows of two workspaces can never collide, every lookup is an indexed
equality on the workspace first, and uninstall deletes by that one column.
"""

from __future__ import annotations

import sqlalchemy as sa

from bolt_app.storage.tables import metadata

QUESTION_COLUMN_CHARS = 500  # the domain allows less (domain.QUESTION_MAX_CHARS); room to grow
OPTION_COLUMN_CHARS = 200

polls = sa.Table(
    "polls",
    metadata,
    sa.Column("workspace_key", sa.String(80), nullable=False),
    sa.Column("poll_id", sa.String(24), nullable=False),
    sa.Column("enterprise_id", sa.String(32)),
    sa.Column("team_id", sa.String(32)),  # the workspace it was created in (informative)
    sa.Column("creator_id", sa.String(32), nullable=False),
    sa.Column("channel_id", sa.String(32), nullable=False),
    sa.Column("message_ts", sa.String(32)),  # NULL until chat.postMessage succeeded
    sa.Column("question", sa.String(QUESTION_COLUMN_CHARS), nullable=False),
    sa.Column("anonymous", sa.Boolean, nullable=False),
    sa.Column("multiple_choice", sa.Boolean, nullable=False),
    # Bumped by every change (vote, unvote, close): message renderers compare it after sending.
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("closed_at", sa.DateTime),
    sa.PrimaryKeyConstraint("workspace_key", "poll_id"),
    sa.Index(None, "workspace_key", "creator_id", "created_at"),
)

poll_options = sa.Table(
    "poll_options",
    metadata,
    sa.Column("workspace_key", sa.String(80), nullable=False),
    sa.Column("poll_id", sa.String(24), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("text", sa.String(OPTION_COLUMN_CHARS), nullable=False),
    sa.PrimaryKeyConstraint("workspace_key", "poll_id", "position"),
    sa.ForeignKeyConstraint(
        ["workspace_key", "poll_id"],
        ["polls.workspace_key", "polls.poll_id"],
        name="fk_poll_options_polls",
        ondelete="CASCADE",
    ),
)

poll_votes = sa.Table(
    "poll_votes",
    metadata,
    sa.Column("workspace_key", sa.String(80), nullable=False),
    sa.Column("poll_id", sa.String(24), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("voted_at", sa.DateTime, nullable=False),
    # One vote per user and option; single-choice polls keep one row per user (the domain moves it).
    sa.PrimaryKeyConstraint("workspace_key", "poll_id", "position", "user_id"),
    sa.ForeignKeyConstraint(
        ["workspace_key", "poll_id", "position"],
        ["poll_options.workspace_key", "poll_options.poll_id", "poll_options.position"],
        name="fk_poll_votes_poll_options",
        ondelete="CASCADE",
    ),
    sa.Index(None, "workspace_key", "poll_id", "user_id"),
)

ALL = (polls, poll_options, poll_votes)
