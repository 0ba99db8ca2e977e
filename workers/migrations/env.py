"""Alembic environment: the app's MetaData (every module in workers.schema.TABLE_MODULES).

Run through `hotline db …` or workers.schema, which pass a connection (online) or a URL
(`--sql`, offline) in config.attributes; there is no alembic.ini.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine

from workers.schema import target_metadata

config = context.config
metadata = target_metadata()


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Migrations are frozen in time: they spell plain SQLAlchemy types, never our classes."""
    from intake.store import UTCDateTime

    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def configure(**kw: Any) -> None:
    context.configure(target_metadata=metadata, compare_type=True, render_item=render_item, **kw)


def run_offline() -> None:
    url = config.attributes["url"]
    configure(url=url, literal_binds=True, render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_on(connection: Connection) -> None:
    # SQLite cannot ALTER most things: batch mode copies the table instead.
    configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    engine = create_engine(config.attributes["url"])
    try:
        with engine.begin() as conn:
            run_on(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
