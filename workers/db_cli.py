"""`hotline db …`: the database schema (Alembic migrations, see workers/schema.py).

Attach with `cli.add_command(db)`. Exit codes as everywhere: 0 success, 2 bad input or
configuration, 1 failure (`db current --check`: 1 when the schema is not at head). The
database URL is never printed: it may hold a password.
"""

from __future__ import annotations

import sys

import click
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from .cli_guard import guard
from .schema import SchemaError, current_revision, head_revision, is_known, make_revision, upgrade, upgrade_sql
from .settings import ConfigError, Settings, load_settings

_guarded = guard(ConfigError, SchemaError, label="")


def _settings(ctx: click.Context) -> Settings:
    # No secrets needed to change the schema: load_settings, not the runtime's with_dev_secrets.
    obj = ctx.find_root().obj or {}
    return load_settings(obj.get("config"))


def _engine(settings: Settings) -> Engine:
    from intake.store import make_engine

    settings.var_path.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.database_url())


def _where(engine: Engine) -> str:
    """Which database, without user or password."""
    u = engine.url
    return f"{u.get_backend_name()} database {u.database!r}" + (f" on {u.host}" if u.host else "")


def _unreachable(engine: Engine, exc: SQLAlchemyError) -> click.ClickException:
    return click.ClickException(f"cannot use the {_where(engine)} ({exc.__class__.__name__})")


@click.group(help="The database schema: Alembic migrations (run `hotline db upgrade` before rolling out new code).")
def db() -> None:
    pass


@db.command("upgrade", help="Run the migrations up to the code's head revision. Safe to repeat.")
@click.option("--sql", "as_sql", is_flag=True, help="Print the SQL for an empty database instead of running it.")
@click.pass_context
@_guarded
def db_upgrade(ctx: click.Context, as_sql: bool) -> None:
    settings = _settings(ctx)
    if as_sql:
        upgrade_sql(settings.database_url())
        return
    engine = _engine(settings)
    try:
        state = upgrade(engine)
    except SQLAlchemyError as exc:
        raise _unreachable(engine, exc) from exc
    finally:
        engine.dispose()
    if state.action == "none":
        click.echo(f"{_where(engine)}: already at head revision {state.head}")
    else:
        adopted = " (tables made before migrations adopted as the baseline)" if state.action == "adopted" else ""
        click.echo(f"{_where(engine)}: {state.before or 'empty'} -> {state.after}{adopted}")


@db.command("current", help="Print the database's revision and the code's head revision.")
@click.option("--check", is_flag=True, help="Exit 1 unless the database is at the code's head revision.")
@click.pass_context
@_guarded
def db_current(ctx: click.Context, check: bool) -> None:
    engine = _engine(_settings(ctx))
    head = head_revision()
    try:
        with engine.connect() as conn:
            rev = current_revision(conn)
    except SQLAlchemyError as exc:
        raise _unreachable(engine, exc) from exc
    finally:
        engine.dispose()
    if rev == head:
        click.echo(f"{rev} (head)")
        return
    if rev is None:
        click.echo(f"none (empty, or made before migrations); head is {head}: run `hotline db upgrade`")
    elif is_known(rev):
        click.echo(f"{rev} (behind head {head}): run `hotline db upgrade`")
    else:
        click.echo(f"{rev} (newer than this code's head {head})")
    if check:
        sys.exit(1)


@db.command("revision", help="For developers: write a new migration with the table changes autogenerate finds.")
@click.option("-m", "--message", required=True, help="What the migration does, e.g. 'add case tags'.")
@_guarded
def db_revision(message: str) -> None:
    path = make_revision(message)
    if path is None:
        click.echo("no schema changes found: the tables match the migrations")
        return
    click.echo(f"wrote {path}: read it, adjust it, and commit it with the code that needs it")
