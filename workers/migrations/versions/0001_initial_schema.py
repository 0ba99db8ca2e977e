"""Initial schema: every table as it was when migrations were introduced (intake.store).

Revision ID: 0001
Revises: none
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calls',
    sa.Column('call_sid', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('from_enc', sa.Text(), nullable=True),
    sa.Column('location_enc', sa.Text(), nullable=True),
    sa.Column('lang', sa.String(length=8), nullable=True),
    sa.Column('digits', sa.String(length=64), nullable=False),
    sa.Column('choice', sa.String(length=16), nullable=True),
    sa.Column('queue_result', sa.String(length=32), nullable=True),
    sa.Column('voicemail_offered', sa.Boolean(), nullable=False),
    sa.Column('recording_sid', sa.String(length=64), nullable=True),
    sa.Column('recording_url_enc', sa.Text(), nullable=True),
    sa.Column('recording_duration', sa.Integer(), nullable=True),
    sa.Column('transcript_enc', sa.Text(), nullable=True),
    sa.Column('transcription_status', sa.String(length=16), nullable=True),
    sa.Column('call_status', sa.String(length=16), nullable=True),
    sa.Column('finalised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signal_id', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('call_sid', name=op.f('pk_calls'))
    )
    op.create_index('ix_calls_open', 'calls', ['finalised_at', 'updated_at'], unique=False)
    op.create_table('cases',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('number', sa.String(length=24), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sla_clock', sa.String(length=16), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cases')),
    sa.UniqueConstraint('number', name=op.f('uq_cases_number'))
    )
    op.create_table('delivery_orphans',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('provider_sid', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_orphans'))
    )
    op.create_index(op.f('ix_delivery_orphans_provider_sid'), 'delivery_orphans', ['provider_sid'], unique=False)
    op.create_table('email_cursor',
    sa.Column('folder', sa.String(length=255), nullable=False),
    sa.Column('uidvalidity', sa.Integer(), nullable=False),
    sa.Column('last_uid', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('folder', name=op.f('pk_email_cursor'))
    )
    op.create_table('email_ids',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('signal_id', sa.String(length=32), nullable=True),
    sa.Column('case_id', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_email_ids'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('routing_key', sa.String(length=64), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    op.create_index('ix_outbox_unpublished', 'outbox', ['published_at', 'created_at'], unique=False)
    op.create_table('textline_state',
    sa.Column('sender_hash', sa.String(length=64), nullable=False),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('silenced_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sender_hash', name=op.f('pk_textline_state'))
    )
    op.create_table('case_events',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_events_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_case_events'))
    )
    op.create_index(op.f('ix_case_events_case_id'), 'case_events', ['case_id'], unique=False)
    op.create_table('case_steps',
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('protocol', sa.String(length=32), nullable=False),
    sa.Column('step_id', sa.String(length=64), nullable=False),
    sa.Column('agency', sa.Text(), nullable=False),
    sa.Column('action', sa.Text(), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consent', sa.Boolean(), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_by', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_case_steps_case_id_cases')),
    sa.PrimaryKeyConstraint('case_id', 'protocol', 'step_id', name=op.f('pk_case_steps'))
    )
    op.create_table('notifications',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target_enc', sa.Text(), nullable=True),
    sa.Column('body_enc', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('dedupe_key', sa.String(length=128), nullable=True),
    sa.Column('provider_id', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_notifications_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_notifications_dedupe_key'))
    )
    op.create_table('outbound',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('to_enc', sa.Text(), nullable=False),
    sa.Column('body_enc', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=128), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('provider_sid', sa.String(length=64), nullable=True),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('flagged', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_outbound_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound')),
    sa.UniqueConstraint('provider_sid', name=op.f('uq_outbound_provider_sid'))
    )
    op.create_table('signals',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sender_hash', sa.String(length=64), nullable=True),
    sa.Column('sender_enc', sa.Text(), nullable=True),
    sa.Column('sender_region', sa.String(length=8), nullable=True),
    sa.Column('state', sa.String(length=8), nullable=True),
    sa.Column('location_enc', sa.Text(), nullable=True),
    sa.Column('text_enc', sa.Text(), nullable=False),
    sa.Column('subject_enc', sa.Text(), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('language_confidence', sa.Float(), nullable=False),
    sa.Column('raw_enc', sa.Text(), nullable=False),
    sa.Column('flags', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('triaged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('case_id', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_signals_case_id_cases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_signals')),
    sa.UniqueConstraint('channel', 'external_id', name='uq_signals_channel_external_id')
    )
    op.create_index(op.f('ix_signals_sender_hash'), 'signals', ['sender_hash'], unique=False)
    op.create_index('ix_signals_status_accepted', 'signals', ['status', 'accepted_at'], unique=False)
    op.create_table('sla_checks',
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('point', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_sla_checks_case_id_cases')),
    sa.PrimaryKeyConstraint('case_id', 'point', name=op.f('pk_sla_checks'))
    )
    op.create_index('ix_sla_checks_due', 'sla_checks', ['done_at', 'due_at'], unique=False)
    op.create_table('attachments',
    sa.Column('signal_id', sa.String(length=32), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('content_type', sa.String(length=128), nullable=True),
    sa.Column('size', sa.Integer(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('fetched_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['signal_id'], ['signals.id'], name=op.f('fk_attachments_signal_id_signals')),
    sa.PrimaryKeyConstraint('signal_id', 'idx', name=op.f('pk_attachments'))
    )
    op.create_table('routes',
    sa.Column('signal_id', sa.String(length=32), nullable=False),
    sa.Column('case_id', sa.String(length=32), nullable=False),
    sa.Column('queue', sa.String(length=64), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sla_clock', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_routes_case_id_cases')),
    sa.ForeignKeyConstraint(['signal_id'], ['signals.id'], name=op.f('fk_routes_signal_id_signals')),
    sa.PrimaryKeyConstraint('signal_id', name=op.f('pk_routes'))
    )
    op.create_table('triage_results',
    sa.Column('signal_id', sa.String(length=32), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('urgency', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('minor_involved', sa.Boolean(), nullable=False),
    sa.Column('trafficking_type', sa.String(length=16), nullable=False),
    sa.Column('imminent_danger', sa.Boolean(), nullable=False),
    sa.Column('matched', sa.JSON(), nullable=False),
    sa.Column('spans', sa.JSON(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('explanation', sa.Text(), nullable=False),
    sa.Column('ruleset', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['signal_id'], ['signals.id'], name=op.f('fk_triage_results_signal_id_signals')),
    sa.PrimaryKeyConstraint('signal_id', name=op.f('pk_triage_results'))
    )


def downgrade() -> None:
    op.drop_table('triage_results')
    op.drop_table('routes')
    op.drop_table('attachments')
    op.drop_index('ix_sla_checks_due', table_name='sla_checks')
    op.drop_table('sla_checks')
    op.drop_index('ix_signals_status_accepted', table_name='signals')
    op.drop_index(op.f('ix_signals_sender_hash'), table_name='signals')
    op.drop_table('signals')
    op.drop_table('outbound')
    op.drop_table('notifications')
    op.drop_table('case_steps')
    op.drop_index(op.f('ix_case_events_case_id'), table_name='case_events')
    op.drop_table('case_events')
    op.drop_table('textline_state')
    op.drop_index('ix_outbox_unpublished', table_name='outbox')
    op.drop_table('outbox')
    op.drop_table('email_ids')
    op.drop_table('email_cursor')
    op.drop_index(op.f('ix_delivery_orphans_provider_sid'), table_name='delivery_orphans')
    op.drop_table('delivery_orphans')
    op.drop_table('cases')
    op.drop_index('ix_calls_open', table_name='calls')
    op.drop_table('calls')
