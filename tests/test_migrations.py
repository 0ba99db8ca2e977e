"""The schema comes from Alembic migrations, on SQLite and PostgreSQL alike.

The first test guards every future schema change: a table or column added to the code without
a migration (`hotline db revision -m …`) makes it fail, naming the difference.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CONFIG, REPO, Backend, settings_env
from sqlalchemy import Engine, insert, select, text

from intake.store import cases, email_cursor, make_engine
from workers import schema
from workers.schema import SchemaError, current_revision, ensure_schema, head_revision, schema_diff, upgrade

HINT = "the tables in the code and the migrations differ: run `hotline db revision -m '…'` and commit the file"


@pytest.fixture
def engine(backend: Backend) -> Iterator[Engine]:
    """An empty database: a fresh SQLite file, or the test PostgreSQL database emptied."""
    eng = make_engine(backend.database_url)
    yield eng
    eng.dispose()


def revision_and_diff(engine: Engine) -> tuple[str | None, list[object]]:
    with engine.connect() as conn:
        return current_revision(conn), schema_diff(conn)


def hotline(tmp_path: Path, backend: Backend, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli", "--config", str(CONFIG), *args],
                          env={**os.environ, **settings_env(tmp_path, backend, **env)}, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_migrations_from_nothing_build_exactly_the_tables_the_code_declares(engine: Engine) -> None:
    state = upgrade(engine)
    assert (state.before, state.after, state.action) == (None, head_revision(), "upgraded")
    rev, diff = revision_and_diff(engine)
    assert rev == head_revision()
    assert diff == [], f"{HINT}:\n" + "\n".join(map(str, diff))


def test_a_process_starting_on_an_empty_database_builds_the_same_schema(engine: Engine) -> None:
    # create_all + stamp head: the fast path for tests and the embedded default.
    state = ensure_schema(engine)
    assert (state.action, state.after) == ("created", head_revision())
    rev, diff = revision_and_diff(engine)
    assert rev == head_revision()
    assert diff == [], f"{HINT}:\n" + "\n".join(map(str, diff))


def test_upgrading_again_changes_nothing_and_keeps_the_data(engine: Engine) -> None:
    from datetime import UTC, datetime

    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(email_cursor).values(folder="INBOX", uidvalidity=7, last_uid=42,
                                                 updated_at=datetime.now(UTC)))
    assert upgrade(engine).action == "none"
    assert ensure_schema(engine).action == "none"
    with engine.connect() as conn:
        assert conn.execute(select(email_cursor.c.last_uid)).scalar_one() == 42
    assert revision_and_diff(engine) == (head_revision(), [])


def test_upgrading_from_the_first_revision_keeps_the_data(engine: Engine) -> None:
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), "0001")
        conn.execute(text("INSERT INTO email_cursor (folder, uidvalidity, last_uid, updated_at) "
                          "VALUES ('INBOX', 7, 42, CURRENT_TIMESTAMP)"))
    state = upgrade(engine)
    assert (state.before, state.after) == ("0001", head_revision())
    assert revision_and_diff(engine) == (head_revision(), [])
    with engine.begin() as conn:
        assert conn.execute(select(email_cursor.c.last_uid)).scalar_one() == 42
        # 0002: an IMAP server's UIDVALIDITY is unsigned 32-bit, past PostgreSQL's INTEGER.
        conn.execute(email_cursor.update().values(uidvalidity=2**32 - 1, last_uid=2**32 - 2))
        assert conn.execute(select(email_cursor.c.uidvalidity)).scalar_one() == 2**32 - 1


def test_upgrading_to_0004_starts_the_retention_clock_of_cases_closed_before(engine: Engine) -> None:
    from datetime import UTC, datetime

    from alembic import command

    closed, reopened_later = datetime(2020, 3, 1, tzinfo=UTC), datetime(2020, 3, 9, tzinfo=UTC)
    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), "0003")
        for cid, status in (("c-closed", "closed"), ("c-open", "open")):
            conn.execute(text("INSERT INTO cases (id, number, opened_at, status, category, urgency, queue, deadline, "
                              "sla_clock, updated_at) VALUES (:id, :id, :t, :s, 'tip', 'normal', 'tips', :t, "
                              "'business', :u)"), {"id": cid, "s": status, "t": closed, "u": reopened_later})
        conn.execute(text("INSERT INTO case_events (id, case_id, at, actor, action, detail) "
                          "VALUES ('e1', 'c-closed', :t, 'ana', 'closed', '{}')"), {"t": closed})
    upgrade(engine)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(cases.c.id, cases.c.closed_at, cases.c.legal_hold))}
    assert rows["c-closed"].closed_at == closed  # from the audit trail, not the later update
    assert rows["c-open"].closed_at is None
    assert rows["c-closed"].legal_hold is False and rows["c-open"].legal_hold is False


def test_hotline_db_upgrade_then_current(tmp_path: Path, backend: Backend) -> None:
    before = hotline(tmp_path, backend, "db", "current", "--check")
    assert before.returncode == 1 and "run `hotline db upgrade`" in before.stdout
    first = hotline(tmp_path, backend, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert f"empty -> {head_revision()}" in first.stdout
    again = hotline(tmp_path, backend, "db", "upgrade")
    assert again.returncode == 0 and f"already at head revision {head_revision()}" in again.stdout
    now = hotline(tmp_path, backend, "db", "current", "--check")
    assert now.returncode == 0 and now.stdout.strip() == f"{head_revision()} (head)"


def test_many_processes_starting_at_once_build_the_schema_once(backend: Backend) -> None:
    # N gunicorn processes and N workers start together on an empty database: the schema lock
    # lets one build it; the others find it built.
    engines = [make_engine(backend.database_url) for _ in range(6)]
    results: list[str] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(len(engines))

    def start(eng: Engine) -> None:
        try:
            gate.wait()
            results.append(ensure_schema(eng).action)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert sorted(results) == ["created"] + ["none"] * (len(engines) - 1)
        assert revision_and_diff(engines[0]) == (head_revision(), [])
    finally:
        for e in engines:
            e.dispose()


def test_a_database_made_before_migrations_is_adopted(engine: Engine) -> None:
    # What every process did before there were migrations: create_all of the tables of that
    # time, which are exactly revision 0001's (without Alembic's version table).
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(schema.alembic_config(conn), "0001")
        conn.execute(text("DROP TABLE alembic_version"))
    state = upgrade(engine)
    assert (state.action, state.after) == ("adopted", head_revision())
    assert revision_and_diff(engine) == (head_revision(), [])


def test_a_database_newer_than_the_code(tmp_path: Path, backend: Backend, engine: Engine) -> None:
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    # A rolling deploy: old processes keep running on the upgraded schema...
    assert ensure_schema(engine).action == "newer"
    # ...but old code never migrates it.
    with pytest.raises(SchemaError, match="9999"):
        upgrade(engine)
    cur = hotline(tmp_path, backend, "db", "current", "--check")
    assert cur.returncode == 1 and "newer than this code" in cur.stdout


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://hotline:s3cret-pw@127.0.0.1:9/hotline"
    res = subprocess.run([sys.executable, "-m", "workers.cli", "--config", str(CONFIG), "db", "upgrade"],
                         env={**os.environ, **settings_env(tmp_path, HOTLINE_DATABASE_URL=url)}, cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "cannot use the postgresql database 'hotline'" in res.stderr
    assert "s3cret" not in res.stdout + res.stderr and "Traceback" not in res.stderr


def _modules_defining_tables() -> set[str]:
    """Modules that call Table(name, metadata, …), found in the source (import order can't hide one)."""
    found = set()
    for pkg in ("intake", "triage", "routing", "workers", "console"):
        for path in (REPO / pkg).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Table"
                        and len(node.args) > 1 and isinstance(node.args[1], ast.Name)):
                    found.add(".".join(path.relative_to(REPO).with_suffix("").parts))
    return found


def test_every_module_that_defines_tables_is_listed_for_migrations() -> None:
    missing = _modules_defining_tables() - set(schema.TABLE_MODULES)
    assert not missing, f"add {sorted(missing)} to workers.schema.TABLE_MODULES (then: hotline db revision -m …)"
