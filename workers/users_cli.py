"""`hotline users …`: console accounts. Passwords are read from a prompt or stdin, never from the
command line (it would sit in shell history and the process list)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from console.models import ROLES
from console.users import UserError, UserStore

from .cli_guard import guard
from .settings import ConfigError, Settings, load_settings

_guarded = guard(ConfigError, UserError, label="")


def _store(ctx: click.Context) -> UserStore:
    from .console_app import user_store
    from .runtime import build_runtime, with_dev_secrets

    obj = ctx.find_root().obj or {}
    settings: Settings = with_dev_secrets(load_settings(obj.get("config")))
    rt = build_runtime(settings)
    ctx.call_on_close(rt.close)
    return user_store(settings, rt)


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@click.group(help="Console accounts: add, list, disable, enable, unlock, passwd, role.")
def users() -> None:
    pass


@users.command("add", help="Add a console user with a role (advocate, supervisor, analyst, admin).")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.pass_context
@_guarded
def users_add(ctx: click.Context, username: str, role: str, password_stdin: bool) -> None:
    store = _store(ctx)
    user = store.add(username, role, _password(password_stdin), datetime.now(UTC))
    click.echo(f"user {user.username} added ({user.role})")


@users.command("list", help="Users, their roles and whether they are active or locked.")
@click.pass_context
@_guarded
def users_list(ctx: click.Context) -> None:
    now = datetime.now(UTC)
    for u in _store(ctx).list():
        state = "disabled" if not u["active"] else \
            "locked" if u["locked_until"] and u["locked_until"] > now else "active"
        click.echo(f"{u['username']:<24} {u['role']:<11} {state}")


@users.command("passwd", help="Set a user's password (ends their open sessions).")
@click.argument("username")
@click.option("--password-stdin", is_flag=True)
@click.pass_context
@_guarded
def users_passwd(ctx: click.Context, username: str, password_stdin: bool) -> None:
    store = _store(ctx)
    store.set_password(username, _password(password_stdin), datetime.now(UTC))
    click.echo(f"password of {username} changed")


@users.command("role", help="Change a user's role (ends their open sessions).")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
@click.pass_context
@_guarded
def users_role(ctx: click.Context, username: str, role: str) -> None:
    _store(ctx).set_role(username, role, datetime.now(UTC))
    click.echo(f"{username} is now {role}")


@users.command("disable", help="Disable an account (ends its sessions at once).")
@click.argument("username")
@click.pass_context
@_guarded
def users_disable(ctx: click.Context, username: str) -> None:
    _store(ctx).set_active(username, False, datetime.now(UTC))
    click.echo(f"{username} disabled")


@users.command("enable", help="Enable a disabled account.")
@click.argument("username")
@click.pass_context
@_guarded
def users_enable(ctx: click.Context, username: str) -> None:
    _store(ctx).set_active(username, True, datetime.now(UTC))
    click.echo(f"{username} enabled")


@users.command("unlock", help="Unlock an account locked after failed logins.")
@click.argument("username")
@click.pass_context
@_guarded
def users_unlock(ctx: click.Context, username: str) -> None:
    _store(ctx).unlock(username, datetime.now(UTC))
    click.echo(f"{username} unlocked")
