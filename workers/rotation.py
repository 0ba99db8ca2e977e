"""`hotline keys rotate`: re-encrypt every stored field and re-hash every keyed identity with the
current key (security.secret_key), reading what older keys wrote with security.previous_secret_keys.

What it rotates, found rather than listed: every `*_enc` column of every table on the schema's
MetaData (a table added later is covered without touching this file), plus the keyed identity
hashes that are derived from an encrypted identity:

* signals.sender_hash   <- the decrypted sender (and the channel: phone or email kind);
* textline_state.sender_hash (the primary key: the row moves) <- its encrypted identity, or,
  for a row written before it kept one, the sender of a message still hashed under the old key.

It also encrypts what older code left in plaintext: the location triage found in a message
(triage_results.details.location, before migration 0005) moves to triage_results.location_enc.

email_ids.id_hash and the console's session hashes are plain SHA-256 of random or public values
(no key), so a key change leaves them valid.

The window: processes run with the new key and the old one in previous_secret_keys before this
command starts (README "Key rotation"). Meanwhile every lookup by identity (conversation,
opt-out, safe-word silence) matches the hash under any configured key (FieldCipher.identity_hashes),
so a texter's next message joins their conversation and a STOP holds whichever pass has reached
their rows. Once this command reports nothing left under an old key, drop the old keys.

Safety:
* a check pass reads everything first; if any value cannot be read with the configured keys it
  stops with exit 2 before changing anything (naming the settings to fix);
* then batches, each its own transaction; a row is updated only if its values are still those
  read (compare-and-set), so a concurrent write is never overwritten (counted, and done by a
  re-run);
* re-running is a no-op (values already under the current key are skipped), so an interrupted
  run is resumed by running it again.
Only counts are printed, never a value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Column, Engine, Table, and_, insert, select, tuple_, update

from console.models import reclassifications
from intake.crypto import KEY_SETTINGS, FieldCipher, SecretKeyError
from intake.store import Store, case_events, identity_kind, signals, textline_state, triage_results

from .schema import target_metadata


class RotationError(Exception):
    """Rotation cannot start: values no configured key can read (the message says which)."""


@dataclass
class TableReport:
    rows: int = 0  # rows read
    reencrypted: int = 0  # rows with at least one field re-encrypted
    fields: int = 0  # fields re-encrypted
    rehashed: int = 0  # identity hashes recomputed
    merged: int = 0  # texter rows found under both keys, merged into one
    unlinked: int = 0  # texter rows with no identity to re-hash from (kept; match via old key)
    conflicts: int = 0  # rows changed by someone else meanwhile (left for a re-run)
    unreadable: dict[str, int] = field(default_factory=dict)  # column -> values no key reads

    def line(self, name: str, dry_run: bool) -> str:
        verb = "would re-encrypt" if dry_run else "re-encrypted"
        parts = [f"{name}: {self.rows} rows read, {verb} {self.reencrypted} rows ({self.fields} fields)"]
        if self.rehashed or name in ("signals", "textline_state"):
            parts.append(f"{'would re-hash' if dry_run else 're-hashed'} {self.rehashed}")
        if self.merged:
            parts.append(f"merged {self.merged}")
        if self.unlinked:
            parts.append(f"{self.unlinked} without a stored identity (left under the old key)")
        if self.conflicts:
            parts.append(f"{self.conflicts} changed meanwhile (run again)")
        return ", ".join(parts)


@dataclass
class RotationReport:
    dry_run: bool
    tables: dict[str, TableReport] = field(default_factory=dict)

    @property
    def changed(self) -> int:
        return sum(t.reencrypted + t.rehashed for t in self.tables.values())

    @property
    def pending(self) -> int:
        """Rows a re-run would still change (conflicts) or cannot change (unlinked)."""
        return sum(t.conflicts + t.unlinked for t in self.tables.values())

    def lines(self) -> list[str]:
        return [t.line(name, self.dry_run) for name, t in self.tables.items()]


def encrypted_columns() -> dict[str, tuple[Table, tuple[Column[Any], ...]]]:
    """Every table with `*_enc` columns, by name (sorted): what rotation must cover."""
    out: dict[str, tuple[Table, tuple[Column[Any], ...]]] = {}
    for name, table in sorted(target_metadata().tables.items()):
        cols = tuple(c for c in table.columns if c.name.endswith("_enc"))
        if cols:
            out[name] = (table, cols)
    return out


def _batches(engine: Engine, table: Table, size: int) -> Iterator[list[Any]]:
    """The table's rows in primary-key order, `size` at a time (keyset pagination: stable while
    rows are updated, and cheap at any depth)."""
    pk = list(table.primary_key.columns)
    last: tuple[Any, ...] | None = None
    while True:
        q = select(table).order_by(*pk).limit(size)
        if last is not None:
            q = q.where(pk[0] > last[0]) if len(pk) == 1 else q.where(tuple_(*pk) > tuple_(*last))
        with engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return
        yield rows
        last = tuple(getattr(rows[-1], c.name) for c in pk)


def _same(col: Column[Any], value: Any) -> Any:
    return col.is_(None) if value is None else col == value


class Rotator:
    def __init__(self, store: Store, batch: int = 500) -> None:
        if batch < 1:
            raise ValueError("batch must be at least 1")
        self.store = store
        self.cipher: FieldCipher = store.cipher
        self.engine = store.engine
        self.batch = batch

    # ---- what a row needs -------------------------------------------------------------------

    def _plan(self, table: Table, cols: tuple[Column[Any], ...], row: Any, rep: TableReport) -> dict[str, Any]:
        """New values for the row's stale fields (and its identity hash); unreadable values are
        counted in `rep.unreadable` and left out."""
        updates: dict[str, Any] = {}
        bad: set[str] = set()
        for col in cols:
            value = getattr(row, col.name)
            if self.cipher.is_current(value):
                continue
            try:
                updates[col.name] = self.cipher.reencrypt(value)
            except SecretKeyError:
                bad.add(col.name)
                rep.unreadable[col.name] = rep.unreadable.get(col.name, 0) + 1
        if table is triage_results and isinstance(row.details, dict) and row.details.get("location") is not None:
            # Written before locations were encrypted: move it out of the plaintext details.
            updates["details"] = {k: v for k, v in row.details.items() if k != "location"}
            if not row.location_enc:
                updates["location_enc"] = self.cipher.encrypt_json(row.details["location"])
        if table is case_events and not row.reason_enc and isinstance(row.detail, dict) and row.detail.get("reason"):
            # Written before reasons were encrypted: move the typed reason out of the plaintext detail.
            updates["detail"] = {k: v for k, v in row.detail.items() if k != "reason"}
            updates["reason_enc"] = self.cipher.encrypt(row.detail["reason"])
        if table is reclassifications and not row.reason_enc and row.reason:
            updates["reason"] = ""
            updates["reason_enc"] = self.cipher.encrypt(row.reason)
        if table is signals and row.sender_enc and "sender_enc" not in bad:
            try:
                sender = self.cipher.decrypt(row.sender_enc)
            except SecretKeyError:
                sender = None
            if sender:
                h = self.cipher.identity_hash(identity_kind(row.channel, sender), sender)
                if h != row.sender_hash:
                    updates["sender_hash"] = h
        return updates

    def _count(self, updates: dict[str, Any], rep: TableReport) -> None:
        enc = [k for k in updates if k.endswith("_enc") or k == "details"]
        if enc:
            rep.reencrypted += 1
            rep.fields += len(enc)
        if "sender_hash" in updates:
            rep.rehashed += 1

    # ---- texters (the hash is the primary key) ------------------------------------------------

    def _texter_identity(self, row: Any) -> str | None:
        """'kind:address' of a textline_state row: stored with it, or recovered from a message
        of the texter still hashed as the row is."""
        if row.identity_enc:
            return self.cipher.decrypt(row.identity_enc)
        with self.engine.connect() as conn:
            msgs = conn.execute(select(signals.c.channel, signals.c.sender_enc)
                                .where(signals.c.sender_hash == row.sender_hash, signals.c.sender_enc.is_not(None))
                                .limit(5)).all()
        for m in msgs:
            sender = self.cipher.decrypt(m.sender_enc)
            if not sender:
                continue
            kind = identity_kind(m.channel, sender)
            if row.sender_hash in self.cipher.identity_hashes(kind, sender):
                return f"{kind}:{sender.strip().lower()}"
        return None

    def _texter_plan(self, row: Any, rep: TableReport) -> tuple[str, str] | None:
        """(new hash, identity) when the row needs rotating, else None."""
        try:
            ident = self._texter_identity(row)
        except SecretKeyError:
            rep.unreadable["identity_enc"] = rep.unreadable.get("identity_enc", 0) + 1
            return None
        if ident is None:
            rep.unlinked += 1
            return None
        kind, _, address = ident.partition(":")
        new_hash = self.cipher.identity_hash(kind, address) or ""
        if new_hash == row.sender_hash and row.identity_enc and self.cipher.is_current(row.identity_enc):
            return None
        return new_hash, ident

    def _rotate_texter(self, row: Any, new_hash: str, ident: str, rep: TableReport) -> None:
        t = textline_state
        with self.engine.begin() as conn:
            now_row = conn.execute(select(t).where(t.c.sender_hash == row.sender_hash)).first()
            if now_row is None or now_row.updated_at != row.updated_at:
                rep.conflicts += 1  # a message changed it meanwhile: a re-run handles it
                return
            identity_enc = self.cipher.encrypt(ident)
            rep.reencrypted += 1
            rep.fields += 1
            if new_hash == row.sender_hash:
                conn.execute(update(t).where(t.c.sender_hash == row.sender_hash).values(identity_enc=identity_enc))
                return
            rep.rehashed += 1
            other = conn.execute(select(t).where(t.c.sender_hash == new_hash)).first()
            rows = [now_row, other] if other is not None else [now_row]
            opted_out, silenced_until = Store._textline_merge(rows)
            values = {"opted_out": opted_out, "silenced_until": silenced_until, "identity_enc": identity_enc,
                      "updated_at": max(r.updated_at for r in rows)}
            conn.execute(t.delete().where(t.c.sender_hash == row.sender_hash))
            if other is not None:
                rep.merged += 1
                conn.execute(update(t).where(t.c.sender_hash == new_hash).values(**values))
            else:
                conn.execute(insert(t).values(sender_hash=new_hash, **values))

    # ---- the passes ---------------------------------------------------------------------------

    def check(self) -> RotationReport:
        """Read everything; count what a rotation would change and what no key can read."""
        report = RotationReport(dry_run=True)
        for name, (table, cols) in encrypted_columns().items():
            rep = report.tables.setdefault(name, TableReport())
            for rows in _batches(self.engine, table, self.batch):
                rep.rows += len(rows)
                for row in rows:
                    if table is textline_state:
                        plan = self._texter_plan(row, rep)
                        if plan is not None:
                            rep.reencrypted += 1
                            rep.fields += 1
                            rep.rehashed += plan[0] != row.sender_hash
                    else:
                        self._count(self._plan(table, cols, row, rep), rep)
        return report

    def rotate(self) -> RotationReport:
        report = RotationReport(dry_run=False)
        tables = encrypted_columns()
        # Texters first: a row without a stored identity is re-hashed from a message of the
        # texter that is still hashed as the row is, i.e. before the signals pass re-hashes it.
        order = ["textline_state", *[n for n in tables if n != "textline_state"]]
        for name in order:
            table, cols = tables[name]
            rep = report.tables.setdefault(name, TableReport())
            for rows in _batches(self.engine, table, self.batch):
                rep.rows += len(rows)
                if table is textline_state:
                    for row in rows:
                        plan = self._texter_plan(row, rep)
                        if plan is not None:
                            self._rotate_texter(row, plan[0], plan[1], rep)
                    continue
                pk = list(table.primary_key.columns)
                with self.engine.begin() as conn:
                    for row in rows:
                        updates = self._plan(table, cols, row, rep)
                        if not updates:
                            continue
                        where = [_same(c, getattr(row, c.name)) for c in pk]
                        # JSON has no equality on PostgreSQL; the row's _enc values pin it down.
                        where += [_same(table.c[k], getattr(row, k)) for k in updates
                                  if not isinstance(table.c[k].type, JSON)]
                        res = conn.execute(update(table).where(and_(*where)).values(**updates))
                        if res.rowcount == 1:
                            self._count(updates, rep)
                        else:
                            rep.conflicts += 1
        report.tables = {n: report.tables[n] for n in tables}
        return report


def unreadable_message(report: RotationReport) -> str | None:
    bad = [f"{t}.{c}: {n}" for t, rep in report.tables.items() for c, n in sorted(rep.unreadable.items())]
    if not bad:
        return None
    return (f"stored values that no configured key can decrypt ({', '.join(bad)}): add the key they were "
            f"written with to {KEY_SETTINGS.split(' or ', 1)[1]}, keeping security.secret_key the new key; "
            "nothing was changed")


def rotate_keys(store: Store, batch: int = 500, dry_run: bool = False) -> RotationReport:
    """Check, then (unless dry_run) rotate. Raises RotationError, before any change, when some
    stored value cannot be read with the configured keys."""
    rotator = Rotator(store, batch)
    checked = rotator.check()
    problem = unreadable_message(checked)
    if problem:
        raise RotationError(problem)
    if dry_run:
        return checked
    report = rotator.rotate()
    problem = unreadable_message(report)
    if problem:  # written meanwhile by a process with another key: rotated what it could
        raise RotationError(problem.replace("nothing was changed", "the rest was rotated"))
    return report
