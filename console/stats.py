"""Statistics for analysts and the public: counts of triaged contacts by one dimension at a time,
with small-cell suppression, CSV export and accessible SVG bar charts.

Only aggregates leave the database query: no ids, no text, no hashes. Everything after the
query is a pure function of those counts.

Suppression rule (`suppress`), and why
--------------------------------------
Attacker model: someone who reads every published figure of a period (every table here, the
totals, the CSV and the charts) and knows what the markers mean: "<T" is a count from 1 to T-1,
"suppressed" (a complementary cell) is a count of T or more.

1. Zeros are omitted. A value that did not occur gets no row: a zero identifies nobody, and the
   vocabularies of language and state are open, so listing every possible value is impossible.
2. A total below T (but above 0) publishes no breakdown at all: the table is withheld and the total
   reads "<T". With so few contacts any breakdown is about individual people.
3. Otherwise the total is published exactly. It would be derivable anyway: every table of a period
   covers the same contacts, and any table without suppressed cells adds up to it. So each table
   is protected on the assumption that its total is known.
4. Primary suppression: every count from 1 to T-1 reads "<T".
5. Complementary suppression: with the total known, total - sum(visible) gives the sum of the
   suppressed cells. A table is published only if, from that sum and the markers' ranges, every
   "<T" cell could still be any value from 1 to T-1 (the published figures narrow it no further
   than "<T" already does), and no suppressed cell can be worked out exactly. This is decided by
   `attack`, which computes exactly what an attacker can infer: with a single linear equation
   (the sum) and a range per cell, each cell's feasible values are one interval.
   If the small cells alone pass (several small cells whose sum is not revealing), nothing else
   is hidden. Otherwise visible cells are hidden as well ("suppressed") until the complementary
   cells' excess over T adds up to at least T-2 - enough even if every small cell were 1, so the
   choice of which cells to hide never depends on the values of the small cells themselves. The
   cell hidden is the smallest visible one that completes that on its own, else the largest, and
   repeat (few cells hidden, small ones preferred).
6. If even hiding every cell cannot pass the test (e.g. two cells 5 and 6 under a total of 11:
   the first must be at least 2), the breakdown is withheld and only the total is published.

Not covered by the rule, and left to the caller: differencing two overlapping periods (Jan-Mar
minus Feb-Mar is January) and successive snapshots of a period still open. Public pages should
publish fixed, completed periods only (whole calendar months or years ending before today); free
`since`/`until` belongs behind the analyst login. Also not covered: an attacker who reproduces the
choice of complementary cells may learn a lower bound on them (e.g. "at least 2T-2"), which can
narrow a single small cell's upper bound; the worst case needs that cell to sit exactly on the
bound.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Engine, func, literal_column, select

from console.models import reclassifications
from intake.store import signals, triage_results

DIMENSIONS = ("category", "channel", "language", "state", "trafficking_type", "minor_involved", "month")

TOTAL_LABEL = "total"
# A complementary cell: T or more, hidden so that a small cell cannot be worked out from the total.
COMPLEMENTARY_DISPLAY = "suppressed"
UNKNOWN = "unknown"
# Spreadsheet apps run a cell that starts with one of these as a formula (OWASP: CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")


@dataclass(frozen=True)
class Cell:
    """One published row. `value` is None whenever the count is not published."""

    label: str
    display: str
    value: int | None
    suppressed: bool


@dataclass(frozen=True)
class SuppressedTable:
    """A one-way table ready to publish: rows in display order, then the total.

    `withheld` is True when counts existed but no breakdown can be published safely: `rows` is
    empty and the total reads either its exact value (T or more) or "<T"."""

    rows: tuple[Cell, ...]
    total: Cell
    threshold: int
    withheld: bool = False


def small_display(threshold: int) -> str:
    return f"<{threshold}"


# ---- the query -----------------------------------------------------------------------------


def _utc_month(dialect: str, column: Any) -> ColumnElement[Any]:
    # Constant SQL only (literal_column): the format strings never come from outside.
    if dialect == "sqlite":
        # SQLite keeps received_at as UTC text 'YYYY-MM-DD HH:MM:SS.ffffff' (UTCDateTime).
        return func.strftime(literal_column("'%Y-%m'"), column)
    if dialect == "postgresql":
        # timestamptz -> wall time in UTC, whatever the session's TimeZone.
        return func.to_char(func.timezone(literal_column("'UTC'"), column), literal_column("'YYYY-MM'"))
    # Any other database: EXTRACT, which SQLAlchemy compiles for every dialect; values are stored
    # in UTC (UTCDateTime), so year and month are UTC's. YYYYMM as a number, labelled YYYY-MM.
    return func.extract("year", column) * 100 + func.extract("month", column)


def _dimension_columns(dialect: str) -> dict[str, ColumnElement[Any]]:
    # A person's correction wins over the machine: the latest reclassification of the signal's case.
    latest_category = (
        select(reclassifications.c.new_category)
        .where(reclassifications.c.case_id == signals.c.case_id)
        .order_by(reclassifications.c.at.desc(), reclassifications.c.id.desc())
        .limit(1)
        .correlate(signals)
        .scalar_subquery()
    )
    return {
        "category": func.coalesce(latest_category, triage_results.c.category),
        "channel": signals.c.channel,
        "language": signals.c.language,
        "state": signals.c.state,
        "trafficking_type": triage_results.c.trafficking_type,
        "minor_involved": triage_results.c.minor_involved,
        "month": _utc_month(dialect, signals.c.received_at),
    }


def _label(dimension: str, value: Any) -> str:
    if dimension == "minor_involved":
        return "yes" if value else "no"
    if dimension == "month" and isinstance(value, int | float | Decimal):
        return f"{int(value) // 100:04d}-{int(value) % 100:02d}"
    if value is None or (isinstance(value, str) and not value.strip()):
        return UNKNOWN
    return str(value)


def _period(since: date | None, until: date | None) -> list[ColumnElement[bool]]:
    """Both ends inclusive, whole UTC days."""
    where = []
    if since is not None:
        where.append(signals.c.received_at >= datetime.combine(since, time.min, UTC))
    if until is not None:
        where.append(signals.c.received_at < datetime.combine(until + timedelta(days=1), time.min, UTC))
    return where


def _crosstab(engine: Engine, dimensions: tuple[str, ...], since: date | None,
              until: date | None) -> Counter[tuple[str, ...]]:
    """Counts of triaged signals per combination of `dimensions`, in one GROUP BY (one snapshot)."""
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown or not dimensions:
        raise ValueError(f"unknown dimension {unknown or dimensions!r}; one of {', '.join(DIMENSIONS)}")
    columns = _dimension_columns(engine.dialect.name)
    # Label in a derived table, group outside it: PostgreSQL will not group by a correlated subquery
    # (or an expression with bound parameters) repeated in GROUP BY.
    triaged = (
        select(*(columns[d].label(d) for d in dimensions))
        .select_from(signals.join(triage_results, triage_results.c.signal_id == signals.c.id))
        .where(*_period(since, until))
        .subquery("triaged")
    )
    keys = [triaged.c[d] for d in dimensions]
    query = select(*keys, func.count().label("n")).group_by(*keys)
    out: Counter[tuple[str, ...]] = Counter()
    with engine.connect() as conn:
        for row in conn.execute(query):
            out[tuple(_label(d, row[i]) for i, d in enumerate(dimensions))] += int(row.n)
    return out


def count_by(engine: Engine, dimension: str, since: date | None, until: date | None) -> dict[str, int]:
    """Triaged signals received from `since` to `until` (UTC dates, both inclusive; None = open),
    counted by one of DIMENSIONS. Category is the latest human reclassification of the signal's
    case when there is one; month is YYYY-MM in UTC; state NULL is "unknown"; minors "yes"/"no"."""
    return {key[0]: n for key, n in _crosstab(engine, (dimension,), since, until).items()}


def statistics(engine: Engine, since: date | None, until: date | None,
               threshold: int) -> dict[str, SuppressedTable]:
    """Every dimension's suppressed table, all from one query, so every table covers the same
    contacts and shows the same total even while new signals arrive."""
    crosstab = _crosstab(engine, DIMENSIONS, since, until)
    tables = {}
    for i, dimension in enumerate(DIMENSIONS):
        marginal: Counter[str] = Counter()
        for key, n in crosstab.items():
            marginal[key[i]] += n
        tables[dimension] = suppress(dict(marginal), threshold, chronological=dimension == "month")
    return tables


# ---- suppression (pure) ------------------------------------------------------------------------


def attack(rest: int, ranges: Iterable[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """What an attacker can infer about hidden cells whose sum is `rest` (total - visible) and each of
    which lies in its (low, high) range (high None = unbounded): each cell's feasible interval."""
    ranges = list(ranges)
    lows = sum(lo for lo, _ in ranges)
    unbounded = sum(hi is None for _, hi in ranges)
    highs = sum(hi for _, hi in ranges if hi is not None)
    out: list[tuple[int, int | None]] = []
    for lo, hi in ranges:
        others_low = lows - lo
        others_unbounded = unbounded - (hi is None)
        others_high = None if others_unbounded else highs - (hi or 0)
        low = lo if others_high is None else max(lo, rest - others_high)
        high = rest - others_low if hi is None else min(hi, rest - others_low)
        out.append((low, high))
    return out


def _safe(rest: int, n_small: int, n_complementary: int, threshold: int) -> bool:
    """After the attack every small cell still spans 1..T-1 and no hidden cell is exact."""
    ranges = [(1, threshold - 1)] * n_small + [(threshold, None)] * n_complementary
    inferred = attack(rest, ranges)
    small_full = all(r == (1, threshold - 1) for r in inferred[:n_small])
    none_exact = all(hi is None or lo < hi for lo, hi in inferred)
    return small_full and none_exact


def _complementary(visible: dict[str, int], threshold: int) -> list[str]:
    """Visible cells to hide so that complementary excess over T reaches T-2 (worst case: every
    small cell is 1). Depends only on the visible cells, never on the small cells' values."""
    need = threshold - 2
    chosen: list[str] = []
    excess = 0
    candidates = sorted(visible.items(), key=lambda kv: (kv[1], kv[0]))
    while candidates and (not chosen or excess < need):
        enough = [kv for kv in candidates if excess + kv[1] - threshold >= need]
        pick = enough[0] if enough else candidates[-1]
        candidates.remove(pick)
        chosen.append(pick[0])
        excess += pick[1] - threshold
    return chosen


def suppress(counts: Mapping[str, int], threshold: int, *, chronological: bool = False) -> SuppressedTable:
    """Publishable table of `counts` under the rule in this module's docstring.

    Rows: visible counts by count descending then label, then hidden ones by label (their order must
    not hint at their size); with `chronological` (months, YYYY-MM) all rows by label."""
    if threshold < 2:
        raise ValueError("threshold must be at least 2")
    if any(n < 0 for n in counts.values()):
        raise ValueError("counts cannot be negative")
    cells = {str(label): int(n) for label, n in counts.items() if n > 0}
    total = sum(cells.values())
    if total == 0:
        return SuppressedTable((), Cell(TOTAL_LABEL, "0", 0, False), threshold)
    if total < threshold:
        return SuppressedTable((), Cell(TOTAL_LABEL, small_display(threshold), None, True), threshold, withheld=True)
    total_cell = Cell(TOTAL_LABEL, str(total), total, False)

    small = {label for label, n in cells.items() if n < threshold}
    visible = {label: n for label, n in cells.items() if label not in small}
    hidden: set[str] = set()
    if small:
        rest = sum(cells[label] for label in small)
        if not _safe(rest, len(small), 0, threshold):
            hidden = set(_complementary(visible, threshold))
            rest += sum(visible[label] for label in hidden)
            if not _safe(rest, len(small), len(hidden), threshold):
                return SuppressedTable((), total_cell, threshold, withheld=True)

    rows = []
    for label, n in cells.items():
        if label in small:
            rows.append(Cell(label, small_display(threshold), None, True))
        elif label in hidden:
            rows.append(Cell(label, COMPLEMENTARY_DISPLAY, None, True))
        else:
            rows.append(Cell(label, str(n), n, False))
    if chronological:
        rows.sort(key=lambda c: c.label)
    else:
        rows.sort(key=lambda c: (c.suppressed, -(c.value or 0), c.label))
    return SuppressedTable(tuple(rows), total_cell, threshold)


# ---- CSV ---------------------------------------------------------------------------------------------


def _csv_safe(text: str) -> str:
    return "'" + text if text.lstrip(" ").startswith(_FORMULA_START) else text


def to_csv(tables: Mapping[str, SuppressedTable]) -> str:
    """dimension,value,count - count is the published string ("<10", "suppressed", "123"), and each
    dimension ends with its total row. Cells a spreadsheet would run as a formula get a leading '."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["dimension", "value", "count"])
    for dimension, table in tables.items():
        for cell in (*table.rows, table.total):
            writer.writerow([_csv_safe(dimension), _csv_safe(cell.label), _csv_safe(cell.display)])
    return buf.getvalue()


# ---- SVG bar chart ---------------------------------------------------------------------------


_WIDTH = 640
_LABEL_W = 170
_BAR_W = 340
_ROW_H = 24
_TOP = 40
_HIDDEN_BAR_W = 36  # every hidden cell gets this bar, whatever its count
_LABEL_CHARS = 24


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _short(text: str) -> str:
    return text if len(text) <= _LABEL_CHARS else text[: _LABEL_CHARS - 1] + "…"


def bar_chart_svg(table: SuppressedTable, title: str) -> str:
    """A self-contained horizontal bar chart (no scripts, no outside resources), readable by
    screen readers: role="img", a <title>, an aria-label and a <desc> listing every published row.

    Bar lengths come from published counts only: a hidden cell is a fixed-size hatched bar
    labelled with its marker, so neither its length nor the scale can hint at its count."""
    uid = "stats-" + hashlib.sha256(title.encode()).hexdigest()[:10]
    shown = [c.value for c in table.rows if c.value is not None]
    scale = max(shown, default=0)
    n = max(len(table.rows), 1)
    footer_y = _TOP + n * _ROW_H + 18
    height = footer_y + (30 if any(c.suppressed for c in table.rows) else 12)
    summary = "; ".join(f"{c.label}: {c.display}" for c in (*table.rows, table.total))
    if table.withheld:
        summary += ". Breakdown withheld: too few contacts to show without identifying anyone."
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{_e(title)}" '
        f'aria-describedby="{uid}-desc" width="{_WIDTH}" height="{height}" viewBox="0 0 {_WIDTH} {height}" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{uid}-title">{_e(title)}</title>',
        f'<desc id="{uid}-desc">{_e(summary)}</desc>',
        f'<defs><pattern id="{uid}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#6b7280" stroke-width="2"/></pattern></defs>',
        f'<text x="0" y="18" font-size="14" font-weight="bold" fill="#111827">{_e(title)}</text>',
    ]
    if not table.rows:
        note = "Breakdown withheld: too few contacts" if table.withheld else "No contacts in this period"
        parts.append(f'<text x="0" y="{_TOP + 14}" fill="#374151">{_e(note)}</text>')
    for i, cell in enumerate(table.rows):
        y = _TOP + i * _ROW_H
        parts.append(f'<text x="{_LABEL_W - 8}" y="{y + 15}" text-anchor="end" fill="#111827">'
                     f'{_e(_short(cell.label))}</text>')
        if cell.value is None:
            width = _HIDDEN_BAR_W
            parts.append(f'<rect x="{_LABEL_W}" y="{y + 3}" width="{width}" height="{_ROW_H - 8}" '
                         f'fill="url(#{uid}-hatch)" stroke="#6b7280" stroke-dasharray="3 2"/>')
        else:
            width = max(1, round(cell.value / scale * _BAR_W)) if scale else 1
            parts.append(f'<rect x="{_LABEL_W}" y="{y + 3}" width="{width}" height="{_ROW_H - 8}" fill="#1d4ed8"/>')
        parts.append(f'<text x="{_LABEL_W + width + 6}" y="{y + 15}" fill="#111827">{_e(cell.display)}</text>')
    parts.append(f'<text x="0" y="{footer_y}" fill="#111827">{_e("Total: " + table.total.display)}</text>')
    if any(c.suppressed for c in table.rows):
        legend = (f"Hatched: {small_display(table.threshold)} = 1 to {table.threshold - 1}; "
                  f"{COMPLEMENTARY_DISPLAY} = hidden so a small count cannot be worked out")
        parts.append(f'<text x="0" y="{footer_y + 18}" fill="#374151">{_e(legend)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)
