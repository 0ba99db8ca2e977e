"""Console accounts: argon2id password hashes, roles, lockout after repeated failures."""

from __future__ import annotations

import functools
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from .models import ROLES, audit_log, users

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


@dataclass(frozen=True)
class User:
    id: str
    username: str
    role: str
    active: bool
    session_version: int
    locked_until: datetime | None
    failed_logins: int

    @classmethod
    def from_row(cls, r: Any) -> User:
        return cls(r.id, r.username, r.role, r.active, r.session_version, r.locked_until, r.failed_logins)


@dataclass(frozen=True)
class LoginOutcome:
    user: User | None
    # ok | bad_credentials | locked | disabled
    reason: str


def check_password_rules(password: str, min_length: int) -> None:
    if len(password) < min_length:
        raise UserError(f"the password is {len(password)} characters; at least {min_length} are required")
    if len(password) > 1024:
        raise UserError("the password is longer than 1024 characters")
    if password.strip() != password:
        raise UserError("the password starts or ends with whitespace")


class UserStore:
    def __init__(self, engine: Engine, lockout_attempts: int = 5, lockout_minutes: int = 15,
                 min_password_length: int = 12, hasher: PasswordHasher | None = None) -> None:
        self.engine = engine
        self.lockout_attempts = lockout_attempts
        self.lockout = timedelta(minutes=lockout_minutes)
        self.min_password_length = min_password_length
        self.hasher = hasher or PasswordHasher()

    @functools.cached_property
    def _dummy(self) -> str:
        """Verified against when the username is unknown, so both take the same time (made on the
        first login, not at start-up: an argon2 hash costs tens of milliseconds)."""
        return self.hasher.hash(uuid.uuid4().hex)

    def audit(self, conn: Any, now: datetime, actor: str, action: str, **detail: Any) -> None:
        conn.execute(insert(audit_log).values(id=uuid.uuid4().hex, at=now, actor=actor, action=action,
                                              detail=detail))

    def add(self, username: str, role: str, password: str, now: datetime, actor: str = "cli") -> User:
        username = username.strip().lower()
        if not USERNAME.match(username):
            raise UserError(f"username {username!r}: use 2-64 of a-z 0-9 . _ - (starting with a letter or digit)")
        if role not in ROLES:
            raise UserError(f"role {role!r}: must be one of {', '.join(ROLES)}")
        check_password_rules(password, self.min_password_length)
        uid = uuid.uuid4().hex
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(users).values(
                    id=uid, username=username, password_hash=self.hasher.hash(password), role=role, active=True,
                    failed_logins=0, session_version=1, created_at=now, updated_at=now))
                self.audit(conn, now, actor, "user_added", username=username, role=role)
        except IntegrityError as exc:
            raise UserError(f"user {username!r} already exists") from exc
        found = self.get(username)
        assert found is not None
        return found

    def get(self, username: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == username.strip().lower())).first()
        return User.from_row(row) if row else None

    def get_by_id(self, user_id: str) -> User | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return User.from_row(row) if row else None

    def list(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.username)).all()
        return [{"username": r.username, "role": r.role, "active": r.active, "locked_until": r.locked_until,
                 "failed_logins": r.failed_logins, "last_login_at": r.last_login_at} for r in rows]

    def authenticate(self, username: str, password: str, now: datetime, client: str = "") -> LoginOutcome:
        """Check a login. Failures count towards a lockout; the outcome is audited either way."""
        name = (username or "").strip().lower()[:64]
        with self.engine.begin() as conn:
            row = conn.execute(select(users).where(users.c.username == name)).first()
            if row is None:
                self._verify(self._dummy, password)
                # Not the typed name: people paste a password into the username field.
                self.audit(conn, now, "(unknown user)", "login_failed", why="unknown user")
                return LoginOutcome(None, "bad_credentials")
            if row.locked_until is not None and row.locked_until > now:
                self.audit(conn, now, name, "login_refused", why="locked")
                return LoginOutcome(None, "locked")
            if not self._verify(row.password_hash, password):
                failed = row.failed_logins + 1
                values: dict[str, Any] = {"failed_logins": failed, "updated_at": now}
                if failed >= self.lockout_attempts:
                    values.update(locked_until=now + self.lockout, failed_logins=0)
                    self.audit(conn, now, name, "locked_out", attempts=failed)
                conn.execute(update(users).where(users.c.id == row.id).values(**values))
                self.audit(conn, now, name, "login_failed", why="bad password")
                return LoginOutcome(None, "locked" if "locked_until" in values else "bad_credentials")
            if not row.active:
                self.audit(conn, now, name, "login_refused", why="disabled")
                return LoginOutcome(None, "disabled")
            values = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
            if self.hasher.check_needs_rehash(row.password_hash):
                values["password_hash"] = self.hasher.hash(password)
            conn.execute(update(users).where(users.c.id == row.id).values(**values))
            self.audit(conn, now, name, "login")
            row = conn.execute(select(users).where(users.c.id == row.id)).first()
        return LoginOutcome(User.from_row(row), "ok")

    def _verify(self, hashed: str, password: str) -> bool:
        try:
            return self.hasher.verify(hashed, password or "")
        except (VerificationError, InvalidHashError):
            return False

    def _change(self, username: str, now: datetime, actor: str, action: str, **values: Any) -> User:
        name = username.strip().lower()
        with self.engine.begin() as conn:
            row = conn.execute(select(users).where(users.c.username == name)).first()
            if row is None:
                raise UserError(f"no user {name!r}")
            conn.execute(update(users).where(users.c.id == row.id).values(
                updated_at=now, session_version=row.session_version + 1, **values))
            self.audit(conn, now, actor, action, username=name)
        user = self.get(name)
        assert user is not None
        return user

    def set_password(self, username: str, password: str, now: datetime, actor: str = "cli") -> User:
        check_password_rules(password, self.min_password_length)
        return self._change(username, now, actor, "password_set", password_hash=self.hasher.hash(password))

    def set_active(self, username: str, active: bool, now: datetime, actor: str = "cli") -> User:
        return self._change(username, now, actor, "user_enabled" if active else "user_disabled", active=active)

    def set_role(self, username: str, role: str, now: datetime, actor: str = "cli") -> User:
        if role not in ROLES:
            raise UserError(f"role {role!r}: must be one of {', '.join(ROLES)}")
        return self._change(username, now, actor, "role_set", role=role)

    def unlock(self, username: str, now: datetime, actor: str = "cli") -> User:
        return self._change(username, now, actor, "user_unlocked", locked_until=None, failed_logins=0)
