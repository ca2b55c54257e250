"""polls

Revision ID: 0002
Revises: 0001

Polls (questions, options, votes) and the processed-deliveries table that makes retried events
and duplicate clicks do their work once. Every table's primary key leads with `workspace_key`.
"""

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "polls",
        sa.Column("workspace_key", sa.String(length=80), nullable=False),
        sa.Column("poll_id", sa.String(length=24), nullable=False),
        sa.Column("enterprise_id", sa.String(length=32), nullable=True),
        sa.Column("team_id", sa.String(length=32), nullable=True),
        sa.Column("creator_id", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("message_ts", sa.String(length=32), nullable=True),
        sa.Column("question", sa.String(length=500), nullable=False),
        sa.Column("anonymous", sa.Boolean(), nullable=False),
        sa.Column("multiple_choice", sa.Boolean(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("workspace_key", "poll_id", name=op.f("pk_polls")),
    )
    with op.batch_alter_table("polls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_polls_workspace_key_creator_id_created_at"),
            ["workspace_key", "creator_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "poll_options",
        sa.Column("workspace_key", sa.String(length=80), nullable=False),
        sa.Column("poll_id", sa.String(length=24), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_key", "poll_id"],
            ["polls.workspace_key", "polls.poll_id"],
            name="fk_poll_options_polls",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_key", "poll_id", "position", name=op.f("pk_poll_options")),
    )

    op.create_table(
        "poll_votes",
        sa.Column("workspace_key", sa.String(length=80), nullable=False),
        sa.Column("poll_id", sa.String(length=24), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("voted_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_key", "poll_id", "position"],
            ["poll_options.workspace_key", "poll_options.poll_id", "poll_options.position"],
            name="fk_poll_votes_poll_options",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_key", "poll_id", "position", "user_id", name=op.f("pk_poll_votes")),
    )
    with op.batch_alter_table("poll_votes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_poll_votes_workspace_key_poll_id_user_id"),
            ["workspace_key", "poll_id", "user_id"],
            unique=False,
        )

    op.create_table(
        "processed_deliveries",
        sa.Column("workspace_key", sa.String(length=80), nullable=False),
        sa.Column("delivery_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("workspace_key", "delivery_id", name=op.f("pk_processed_deliveries")),
    )
    with op.batch_alter_table("processed_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_processed_deliveries_received_at"), ["received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("processed_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_processed_deliveries_received_at"))
    op.drop_table("processed_deliveries")
    with op.batch_alter_table("poll_votes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_poll_votes_workspace_key_poll_id_user_id"))
    op.drop_table("poll_votes")
    op.drop_table("poll_options")
    with op.batch_alter_table("polls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_polls_workspace_key_creator_id_created_at"))
    op.drop_table("polls")
