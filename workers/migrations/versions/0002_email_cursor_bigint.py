"""Email cursor: 64-bit IMAP UIDVALIDITY and UIDs (unsigned 32-bit values overflowed INTEGER on PostgreSQL).

Revision ID: 0002
Revises: '0001'
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('email_cursor', schema=None) as batch_op:
        batch_op.alter_column('uidvalidity',
               existing_type=sa.INTEGER(),
               type_=sa.BigInteger(),
               existing_nullable=False)
        batch_op.alter_column('last_uid',
               existing_type=sa.INTEGER(),
               type_=sa.BigInteger(),
               existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('email_cursor', schema=None) as batch_op:
        batch_op.alter_column('last_uid',
               existing_type=sa.BigInteger(),
               type_=sa.INTEGER(),
               existing_nullable=False)
        batch_op.alter_column('uidvalidity',
               existing_type=sa.BigInteger(),
               type_=sa.INTEGER(),
               existing_nullable=False)
