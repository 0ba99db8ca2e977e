"""staff reasons encrypted: case_events.reason_enc, reclassifications.reason_enc

Reasons typed by staff (close, reopen, reclassify, move a contact, legal hold) can hold what a
contact said or who they are, so new rows keep them encrypted in reason_enc instead of in
plaintext (case_events.detail["reason"], reclassifications.reason). Rows written before are
moved by `hotline keys rotate` (a migration has no key), and blanked by `hotline purge`.

Revision ID: 0006
Revises: '0005'
Create Date: 2026-12-06 14:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (see 0004): batch mode would copy and drop a table others point at.
    op.add_column('case_events', sa.Column('reason_enc', sa.Text(), nullable=True))
    op.add_column('reclassifications', sa.Column('reason_enc', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('reclassifications', 'reason_enc')
    op.drop_column('case_events', 'reason_enc')
