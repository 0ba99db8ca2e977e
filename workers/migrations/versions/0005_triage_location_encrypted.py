"""triage location encrypted: triage_results.location_enc

The place triage finds in a message used to sit in plaintext in triage_results.details; new
rows keep it encrypted in location_enc. Rows written before are moved by `hotline keys rotate`
(a migration has no key), and blanked by `hotline purge` like any other.

Revision ID: 0005
Revises: '0004'
Create Date: 2026-12-06 11:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (see 0004): batch mode would copy and drop a table others point at.
    op.add_column('triage_results', sa.Column('location_enc', sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column('triage_results', 'location_enc')
