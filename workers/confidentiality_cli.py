"""`hotline keys rotate`, `hotline purge` and `hotline cases hold|unhold`: confidentiality at rest.

Exit codes: 0 done, 2 bad input or configuration (nothing changed), 1 failure. Only counts are
printed, never a stored value.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from intake.store import Store, make_engine

from .cli_guard import guard
from .retention import HoldError, purge, set_legal_hold
from .rotation import RotationError, rotate_keys
from .settings import ConfigError, Settings, load_settings

_guarded = guard(ConfigError, RotationError, HoldError, label="")


def _settings(ctx: click.Context) -> Settings:
    from .runtime import with_dev_secrets

    obj = ctx.find_root().obj or {}
    return with_dev_secrets(load_settings(obj.get("config")))


def _store(ctx: click.Context, settings: Settings) -> Store:
    from .runtime import make_cipher
    from .schema import ensure_schema

    store = Store(make_engine(settings.database_url()), make_cipher(settings))
    ctx.call_on_close(store.engine.dispose)
    ensure_schema(store.engine)
    return store


# ---- keys ---------------------------------------------------------------------------------------


@click.group(help="Encryption keys: rotate (re-encrypt and re-hash everything with the current key).")
def keys() -> None:
    pass


@keys.command("rotate", help="Re-encrypt every encrypted field and re-hash every keyed identity with "
                             "security.secret_key, reading old data with security.previous_secret_keys. "
                             "Resumable: run it again after an interruption.")
@click.option("--dry-run", is_flag=True, help="Read and count what would change; change nothing.")
@click.option("--batch", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Rows per transaction.")
@click.pass_context
@_guarded
def keys_rotate(ctx: click.Context, dry_run: bool, batch: int) -> None:
    settings = _settings(ctx)
    store = _store(ctx, settings)
    previous = store.cipher.key_count - 1
    click.echo(f"keys rotate: current key and {previous} previous key{'s' if previous != 1 else ''}"
               f"{' (dry run: nothing is changed)' if dry_run else ''}")
    report = rotate_keys(store, batch=batch, dry_run=dry_run)
    for _attempt in range(3):  # rows a webhook changed meanwhile: another pass picks them up
        if dry_run or not any(t.conflicts for t in report.tables.values()):
            break
        again = rotate_keys(store, batch=batch)
        for name, rep in again.tables.items():
            first = report.tables[name]
            first.reencrypted += rep.reencrypted
            first.fields += rep.fields
            first.rehashed += rep.rehashed
            first.merged += rep.merged
            first.conflicts = rep.conflicts
    for line in report.lines():
        click.echo(f"  {line}")
    if dry_run:
        click.echo(f"would change {report.changed}; run without --dry-run to rotate")
        return
    unlinked = sum(t.unlinked for t in report.tables.values())
    if any(t.conflicts for t in report.tables.values()):
        click.echo("keys rotate: some rows kept changing during the rotation; run it again", err=True)
        ctx.exit(1)
    click.echo(f"done: {report.changed} changes")
    if unlinked:
        click.echo(f"warning: {unlinked} texter row(s) have no stored identity and no message left to "
                   "recover it from; they match only while their old key stays in security.previous_secret_keys")
    else:
        click.echo("nothing is left under an old key: once every process runs with this security.secret_key, "
                   "remove security.previous_secret_keys (HOTLINE_PREVIOUS_SECRET_KEYS)")


# ---- retention ----------------------------------------------------------------------------------


@click.command("purge", help="Blank or delete contact data past the retention periods (config `retention`). "
                             "Never touches an open case or one on legal hold. Run it daily (cron).")
@click.option("--dry-run", is_flag=True, help="Print the same counts; change nothing.")
@click.option("--batch", type=click.IntRange(1, 10_000), default=200, show_default=True,
              help="Cases per transaction.")
@click.pass_context
@_guarded
def purge_cmd(ctx: click.Context, dry_run: bool, batch: int) -> None:
    settings = _settings(ctx)
    store = _store(ctx, settings)
    report = purge(store.engine, settings.retention, datetime.now(UTC), dry_run=dry_run, batch=batch)
    r = settings.retention
    click.echo(f"purge{' (dry run: nothing is changed)' if dry_run else ''}: closed cases after "
               f"{r.closed_case_days} days, unrouted contacts after {r.unrouted_signal_days}, notifications "
               f"after {r.notification_days}, console audit after {r.audit_days}")
    for line in report.lines():
        click.echo(line)


@click.command("hold", help="Put a case on legal hold: `hotline purge` never touches it. Audited.")
@click.argument("number")
@click.option("--reason", required=True, help="Why (kept in the case's audit trail).")
@click.option("--by", "actor", required=True, help="Who (username).")
@click.pass_context
@_guarded
def cases_hold(ctx: click.Context, number: str, reason: str, actor: str) -> None:
    _hold(ctx, number, True, reason, actor)


@click.command("unhold", help="Release a case's legal hold (the retention clock applies again). Audited.")
@click.argument("number")
@click.option("--reason", required=True, help="Why (kept in the case's audit trail).")
@click.option("--by", "actor", required=True, help="Who (username).")
@click.pass_context
@_guarded
def cases_unhold(ctx: click.Context, number: str, reason: str, actor: str) -> None:
    _hold(ctx, number, False, reason, actor)


def _hold(ctx: click.Context, raw: str, held: bool, reason: str, actor: str) -> None:
    from routing.cases import normalize_case_number

    number = normalize_case_number(raw)
    if number is None:
        raise HoldError(f"{raw!r} is not a valid case number (like HT-7K3M-9QXD-4)")
    store = _store(ctx, _settings(ctx))
    outcome = set_legal_hold(store, number, held, reason, actor, datetime.now(UTC))
    click.echo({"held": f"{number} is on legal hold", "already held": f"{number} was already on legal hold",
                "released": f"{number}: legal hold released", "not held": f"{number} is not on legal hold"}[outcome])
