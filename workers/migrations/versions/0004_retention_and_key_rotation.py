"""retention and key rotation: case legal hold, closed and purged times; texter identity

cases.closed_at of cases closed before this revision is taken from their latest 'closed'
audit event (else their last update), so the retention clock starts where it should.

Revision ID: 0004
Revises: '0003'
Create Date: 2026-12-06 10:46:03.668409
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, not batch mode: on SQLite batch mode copies and drops `cases`, which
    # the foreign keys of its signals and events forbid.
    op.add_column('cases', sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('cases', sa.Column('legal_hold', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column('cases', sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('textline_state', sa.Column('identity_enc', sa.Text(), nullable=True))
    op.execute(sa.text(
        "UPDATE cases SET closed_at = COALESCE((SELECT MAX(e.at) FROM case_events e "
        "WHERE e.case_id = cases.id AND e.action = 'closed'), updated_at, opened_at) "
        "WHERE status = 'closed'"))


def downgrade() -> None:
    op.drop_column('textline_state', 'identity_enc')
    op.drop_column('cases', 'purged_at')
    op.drop_column('cases', 'legal_hold')
    op.drop_column('cases', 'closed_at')
