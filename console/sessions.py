"""Server-side console sessions with an absolute and an idle limit."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, insert, select, update

from .models import sessions, users
from .users import User

# last_seen_at is written at most this often, so reading pages is not a write each time.
TOUCH_EVERY = timedelta(seconds=30)


def _hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore:
    def __init__(self, engine: Engine, lifetime: timedelta, idle: timedelta) -> None:
        self.engine = engine
        self.lifetime = lifetime
        self.idle = idle

    def start(self, user: User, now: datetime) -> str:
        sid = secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(insert(sessions).values(id_hash=_hash(sid), user_id=user.id,
                                                 session_version=user.session_version,
                                                 created_at=now, last_seen_at=now))
            # Old sessions of anyone are cleared as we go; no separate job needed.
            conn.execute(delete(sessions).where(sessions.c.last_seen_at < now - self.idle))
        return sid

    def resolve(self, sid: str | None, now: datetime) -> User | None:
        """The user a session id belongs to, or None when it is unknown, expired, idle too long,
        or the account changed (disabled, password or role changed) since it was issued."""
        if not sid or len(sid) > 128:
            return None
        h = _hash(sid)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(sessions.c.created_at, sessions.c.last_seen_at, sessions.c.session_version,
                       users.c.id, users.c.username, users.c.role, users.c.active, users.c.failed_logins,
                       users.c.locked_until, users.c.session_version.label("user_version"))
                .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
                .where(sessions.c.id_hash == h)
            ).first()
            if row is None:
                return None
            if (row.created_at + self.lifetime < now or row.last_seen_at + self.idle < now
                    or not row.active or row.session_version != row.user_version):
                conn.execute(delete(sessions).where(sessions.c.id_hash == h))
                return None
            if now - row.last_seen_at > TOUCH_EVERY:
                conn.execute(update(sessions).where(sessions.c.id_hash == h).values(last_seen_at=now))
        return User(row.id, row.username, row.role, row.active, row.user_version, row.locked_until,
                    row.failed_logins)

    def end(self, sid: str | None) -> None:
        if sid:
            with self.engine.begin() as conn:
                conn.execute(delete(sessions).where(sessions.c.id_hash == _hash(sid)))
