"""The database schema: Alembic migrations, and bringing a database to the code's revision.

Every process calls `ensure_schema(engine)` when it starts (via `build_runtime`):

* database at the head revision -> nothing (one query);
* empty database -> `create_all` + stamp head (Alembic's documented way to build a database
  from scratch; fast for tests and the embedded default). `tests/test_migrations.py` proves
  that running the migrations gives exactly the same schema, so the two never drift apart;
* database behind head, or created before migrations existed -> `alembic upgrade head`;
* database newer than the code (a rolling deploy: old processes still running after the
  upgrade) -> a warning, and the process goes on: migrations must stay backward compatible.

Changes run under a lock (a PostgreSQL advisory lock held by the migrating transaction; on
SQLite a file lock beside the database file), so N web processes and N workers starting at
once never race to create or alter tables. Production runs `hotline db upgrade` (always the
real migrations) before rolling out new code; processes then find the database at head.
"""

from __future__ import annotations

import fcntl
import functools
import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, MetaData, inspect, text

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The one list of modules that define tables (all on intake.store's MetaData). A module that
# adds tables must be listed here, or neither create_all nor autogenerate will see them;
# tests/test_migrations.py fails when a module defining tables is missing.
TABLE_MODULES: tuple[str, ...] = ("intake.store", "console.models")
# The revision a database made by create_all before migrations existed is taken to be at.
BASELINE = "0001"
# pg_advisory_xact_lock key: "hotline schema" (any constant shared by every process).
PG_LOCK_KEY = 0x686F746C696E65


class SchemaError(Exception):
    """The database's schema cannot be brought to the code's revision (message says why)."""


@dataclass(frozen=True)
class SchemaState:
    before: str | None
    after: str | None
    head: str
    action: str  # 'none', 'created', 'upgraded', 'adopted', 'newer'


def target_metadata() -> MetaData:
    """The MetaData holding every table, after importing every module that defines some."""
    for name in TABLE_MODULES:
        importlib.import_module(name)
    from intake.store import metadata

    return metadata


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Sequential file names (0002_add_x.py): the history reads in order.
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    if connection is not None:
        cfg.attributes["connection"] = connection
    if url is not None:
        # Kept out of the ini options: configparser would choke on a '%' in a password.
        cfg.attributes["url"] = url
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    try:
        head = _script().get_current_head()
    except CommandError as exc:
        raise SchemaError(f"migrations have more than one head; merge them ({exc})") from exc
    if head is None:
        raise SchemaError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def is_known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except CommandError:
        return False


def schema_diff(conn: Connection) -> list[Any]:
    """What autogenerate would change to make the database match the code (empty = in sync)."""
    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "target_metadata": target_metadata()})
    return list(compare_metadata(ctx, target_metadata()))


def _has_app_tables(conn: Connection) -> bool:
    existing = set(inspect(conn).get_table_names())
    return bool(existing & set(target_metadata().tables))


@contextmanager
def _locked(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the schema lock until it ends."""
    if engine.dialect.name == "sqlite":
        db = engine.url.database
        if not db or db == ":memory:":
            with engine.begin() as conn:
                yield conn
            return
        with open(f"{db}.schema-lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                with engine.begin() as conn:
                    yield conn
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
        yield conn


def _upgrade(conn: Connection, current: str | None) -> str:
    action = "upgraded"
    if current is None and _has_app_tables(conn):
        # Made by create_all before there were migrations: that schema is the baseline.
        log.warning("database has tables but no migration version: adopting it as revision %s", BASELINE)
        MigrationContext.configure(conn).stamp(_script(), BASELINE)
        action = "adopted"
    command.upgrade(alembic_config(conn), "head")
    return action


def ensure_schema(engine: Engine) -> SchemaState:
    """Bring the database to the code's revision (see the module docstring). Safe to call
    from many processes at once."""
    state = _ensure(engine)
    if state.action != "none":
        log.info("database schema: %s (%s -> %s)", state.action, state.before or "empty", state.after)
    return state


def _ensure(engine: Engine) -> SchemaState:
    head = head_revision()
    with engine.connect() as conn:
        before = current_revision(conn)
    if before == head:
        return SchemaState(before, head, head, "none")
    with _locked(engine) as conn:
        before = current_revision(conn)  # another process may have done it while we waited
        if before == head:
            return SchemaState(before, head, head, "none")
        if before is not None and not is_known(before):
            log.warning("database schema is at revision %s, newer than this code's %s; going on "
                        "(migrations are backward compatible)", before, head)
            return SchemaState(before, before, head, "newer")
        if before is None and not _has_app_tables(conn):
            target_metadata().create_all(conn)
            MigrationContext.configure(conn).stamp(_script(), head)
            return SchemaState(None, head, head, "created")
        action = _upgrade(conn, before)
        return SchemaState(before, current_revision(conn), head, action)


def upgrade(engine: Engine) -> SchemaState:
    """`hotline db upgrade`: run the migrations up to head (from nothing on an empty database)."""
    head = head_revision()
    with _locked(engine) as conn:
        before = current_revision(conn)
        if before is not None and not is_known(before):
            raise SchemaError(f"database is at revision {before}, which this code does not know "
                              f"(newer code ran `hotline db upgrade`?); this code's head is {head}")
        if before == head:
            return SchemaState(before, head, head, "none")
        action = _upgrade(conn, before)
        return SchemaState(before, current_revision(conn), head, action)


def upgrade_sql(url: str) -> None:
    """Print the SQL `upgrade` would run on an empty database (for a DBA to review)."""
    command.upgrade(alembic_config(url=url), "head", sql=True)


def make_revision(message: str) -> str | None:
    """Write a new migration with what autogenerate finds between the migrations (run on a
    scratch SQLite database: never a create_all'd one, which would already hold the new tables)
    and the code's tables. Returns the new file's path, or None when they match."""
    import tempfile

    from sqlalchemy import create_engine

    number = len(list(_script().walk_revisions())) + 1
    empty: list[bool] = []

    def skip_empty(_ctx: Any, _rev: Any, directives: list[Any]) -> None:
        if directives and directives[0].upgrade_ops.is_empty():
            empty.append(True)
            directives[:] = []

    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/scratch.db")
        try:
            upgrade(engine)
            with engine.connect() as conn:
                script = command.revision(alembic_config(conn), message=message, autogenerate=True,
                                          rev_id=f"{number:04d}", process_revision_directives=skip_empty)
        finally:
            engine.dispose()
    _script.cache_clear()
    if empty or script is None or isinstance(script, list):
        return None
    return str(script.path)
