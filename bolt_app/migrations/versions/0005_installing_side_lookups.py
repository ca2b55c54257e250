"""installing side lookups

Revision ID: 0005
Revises: 0004

Two indexes on slack_bots: (client_id, team_id) and (client_id, bot_id). A view payload from a
Slack Connect channel names the installing workspace only by its team id
(`view.app_installed_team_id`) and the installation's bot (`view.bot_id`); authorize finds that
installation, with the enterprise it was stored with, through them.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("slack_bots", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_slack_bots_client_id_team_id"), ["client_id", "team_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_slack_bots_client_id_bot_id"), ["client_id", "bot_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("slack_bots", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_slack_bots_client_id_bot_id"))
        batch_op.drop_index(batch_op.f("ix_slack_bots_client_id_team_id"))
