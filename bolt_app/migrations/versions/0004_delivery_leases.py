"""delivery leases

Revision ID: 0004
Revises: 0003

A claim on a delivery can be a lease: `claimed_until` says until when the attempt that claimed
it may still be doing the work, and `claim_token` names that attempt. A lease is turned into a
final claim (both NULL) once the work is done, so a re-run (a queued job run again after its
worker was killed) skips only work that was finished, and takes over a lease that ran out.
Existing rows are final claims: their work committed with them. Both columns are nullable and
added in place (SQLite, PostgreSQL and MariaDB add a nullable column without copying the table).
"""

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("processed_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("claim_token", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("processed_deliveries", schema=None) as batch_op:
        batch_op.drop_column("claim_token")
        batch_op.drop_column("claimed_until")
