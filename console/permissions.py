"""Who may do what in the console: one table, checked on every route (pages and API alike)."""

from __future__ import annotations

from collections.abc import Mapping

from .models import ROLES

# Advocates and supervisors work cases; analysts see only aggregates; admins run accounts and
# the machinery (failed jobs) but read no case.
PERMISSIONS: Mapping[str, frozenset[str]] = {
    "queues.view": frozenset({"advocate", "supervisor"}),
    "case.view": frozenset({"advocate", "supervisor"}),
    "case.contact": frozenset({"advocate", "supervisor"}),
    "case.act": frozenset({"advocate", "supervisor"}),
    "case.assign_others": frozenset({"supervisor"}),
    "dashboard.view": frozenset({"supervisor", "admin"}),
    "jobs.retry": frozenset({"supervisor", "admin"}),
    "quality.view": frozenset({"supervisor", "analyst"}),
    "stats.view": frozenset({"supervisor", "analyst", "admin"}),
    "audit.view": frozenset({"supervisor", "admin"}),
    "users.manage": frozenset({"admin"}),
}

# Where each role lands after logging in.
HOME: Mapping[str, str] = {
    "advocate": "console.queues",
    "supervisor": "console.dashboard",
    "analyst": "console.stats",
    "admin": "console.users_page",
}


def allowed(role: str, permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown permission {permission!r}")
    return role in PERMISSIONS[permission]


def _check() -> None:
    for perm, roles in PERMISSIONS.items():
        unknown = roles - set(ROLES)
        if unknown:
            raise ValueError(f"permission {perm}: unknown roles {sorted(unknown)}")
    if set(HOME) != set(ROLES):
        raise ValueError("every role needs a home page")


_check()
