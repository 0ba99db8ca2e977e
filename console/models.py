"""The console's own tables, on the same MetaData as the intake store (one schema, one migration
history). Case actions are audited in intake's case_events; everything else here."""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, ForeignKey, Index, Integer, String, Table, Text

from intake.store import UTCDateTime, metadata

ROLES = ("advocate", "supervisor", "analyst", "admin")

users = Table(
    "console_users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", UTCDateTime()),
    # Bumped on password change, disable or unlock: every session issued before is void.
    Column("session_version", Integer, nullable=False, default=1),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("last_login_at", UTCDateTime()),
)

# Who did what outside a case (logins, lockouts, user changes, exports, job retries).
audit_log = Table(
    "console_audit",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(32), nullable=False),
    Column("detail", JSON, nullable=False, default=dict),
    Index("ix_console_audit_at", "at"),
)

# Advocates' notes on a case (encrypted: they hold what callers told us).
case_notes = Table(
    "case_notes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("case_id", String(32), ForeignKey("cases.id"), nullable=False, index=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("author", String(64), nullable=False),
    Column("body_enc", Text, nullable=False),
)

case_assignments = Table(
    "case_assignments",
    metadata,
    Column("case_id", String(32), ForeignKey("cases.id"), primary_key=True),
    Column("assignee", String(64), nullable=False),
    Column("assigned_at", UTCDateTime(), nullable=False),
    Column("assigned_by", String(64), nullable=False),
)

# A person's correction of the machine's category/urgency: the label the triage-quality page
# measures the rules against.
reclassifications = Table(
    "reclassifications",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("case_id", String(32), ForeignKey("cases.id"), nullable=False, index=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("machine_category", String(16), nullable=False),
    Column("machine_urgency", String(16), nullable=False),
    Column("old_category", String(16), nullable=False),
    Column("old_urgency", String(16), nullable=False),
    Column("new_category", String(16), nullable=False),
    Column("new_urgency", String(16), nullable=False),
    # Plaintext only in rows written before reasons were encrypted ("" since; `hotline keys
    # rotate` moves old ones into reason_enc).
    Column("reason", Text, nullable=False),
    Column("reason_enc", Text, nullable=True),
)

# Server-side sessions: the browser holds a random id (in a signed, HttpOnly cookie); the table
# holds its hash, so logout, disable and password change end a session at once.
sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(32), ForeignKey("console_users.id"), nullable=False, index=True),
    Column("session_version", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("last_seen_at", UTCDateTime(), nullable=False),
)
