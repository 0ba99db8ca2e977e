"""Statistics: counts by dimension from a real database (SQLite and PostgreSQL), small-cell
suppression that survives a differencing attack on the published total, and nothing identifying
in any output (tables, CSV, SVG)."""

from __future__ import annotations

import csv
import io
import random
import re
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from console.models import reclassifications
from console.stats import (
    COMPLEMENTARY_DISPLAY,
    DIMENSIONS,
    Cell,
    SuppressedTable,
    bar_chart_svg,
    count_by,
    statistics,
    suppress,
    to_csv,
)
from intake.case_numbers import new_case_number
from intake.signal import Channel, Location, Signal
from intake.store import CaseLink, metadata, signals

T = 10
NOW = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
SVG_NS = "{http://www.w3.org/2000/svg}"


# ---- generated contacts in a real database ----------------------------------------------------


@dataclass(frozen=True)
class Contact:
    received_at: datetime
    channel: str = "sms"
    language: str = "en"
    state: str | None = "TX"
    category: str = "general"
    minor: bool = False
    ttype: str = "none"
    joins: int | None = None  # index of an earlier contact whose case this one joins


@dataclass
class Stored:
    signal_ids: list[str] = field(default_factory=list)
    case_ids: list[str] = field(default_factory=list)
    case_numbers: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)
    sender_hashes: list[str] = field(default_factory=list)

    def secrets(self) -> list[str]:
        national = [p.removeprefix("+1") for p in self.phones]
        return (self.signal_ids + self.case_ids + self.case_numbers + self.phones + national + self.texts
                + self.external_ids + self.sender_hashes)


def _pick(rng: random.Random, weights: dict) -> object:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def generate(seed: int, n: int = 300) -> list[Contact]:
    """Contacts shaped like the hotline's history, plus deliberately tiny cells."""
    rng = random.Random(seed)
    start = datetime(2025, 10, 1, tzinfo=UTC)
    span = (datetime(2026, 4, 1, tzinfo=UTC) - start).total_seconds()
    out: list[Contact] = []
    for i in range(n):
        out.append(Contact(
            received_at=start + timedelta(seconds=rng.uniform(0, span)),
            channel=_pick(rng, {"sms": 50, "voice": 30, "webform": 15, "email": 5}),
            language=_pick(rng, {"en": 80, "es": 20}),
            state=_pick(rng, {"TX": 20, "CA": 20, "NY": 15, "FL": 10, "OH": 5, None: 20}),
            category=_pick(rng, {"general": 26, "unrelated": 23, "tip": 16, "at_risk": 13, "referral": 11,
                                 "tta": 5, "crisis": 4}),
            minor=rng.random() < 0.3,
            ttype=_pick(rng, {"sex": 45, "labor": 30, "both": 2, "none": 10, "unknown": 13}),
            joins=rng.randrange(i) if i and rng.random() < 0.2 else None,
        ))
    # Tiny cells: a language, states, a month and a trafficking type seen once or twice.
    out += [
        Contact(datetime(2025, 9, 12, 9, tzinfo=UTC), language="fr", state="WY", ttype="both"),
        Contact(datetime(2025, 9, 20, 22, tzinfo=UTC), language="zh", state="VT", channel="email"),
        Contact(datetime(2026, 1, 5, 3, tzinfo=UTC), language="fr", state="AK", category="crisis", minor=True),
    ]
    return out


def store_contacts(runtime, contacts: list[Contact]) -> Stored:
    """Each contact becomes a stored, triaged signal with a case, as the worker would leave it."""
    store = runtime.store
    metadata.create_all(store.engine, checkfirst=True)  # the console's tables, whatever the migrations hold
    out = Stored()
    for i, c in enumerate(contacts):
        phone = f"+1202555{100 + i % 100:04d}"  # 555-0100..0199: reserved for fiction
        text = f"Invented test message {i}: someone at the orchard took the papers, ref {uuid.uuid4().hex[:10]}"
        signal = Signal(channel=Channel(c.channel), external_id=f"EXT{uuid.uuid4().hex}", received_at=c.received_at,
                        sender=phone, text=text, language=c.language, location=Location(state=c.state))
        store.insert_signal(signal, NOW)
        case_id = uuid.uuid4().hex
        link = None if c.joins is None else CaseLink(out.case_ids[c.joins], out.case_numbers[c.joins])
        number = store.save_outcome(
            signal.id,
            triage={"category": c.category, "urgency": "normal", "language": c.language,
                    "minor_involved": c.minor, "trafficking_type": c.ttype, "imminent_danger": False,
                    "matched": ["generated"], "spans": [], "details": {}, "explanation": "generated",
                    "ruleset": "test"},
            route={"queue": "general", "deadline": NOW + timedelta(days=3), "sla_clock": "business"},
            new_case_number=new_case_number, new_case_id=lambda case_id=case_id: case_id, now=NOW, link=link,
        )
        out.signal_ids.append(signal.id)
        out.case_ids.append(link.case_id if link else case_id)
        out.case_numbers.append(number)
        out.phones.append(phone)
        out.texts.append(text)
        out.external_ids.append(signal.external_id)
    with store.engine.connect() as conn:
        out.sender_hashes = [h for (h,) in conn.execute(select(signals.c.sender_hash)) if h]
    return out


def reclassify(runtime, case_id: str, new_category: str, at: datetime, reason: str = "caller clarified") -> None:
    with runtime.store.begin() as conn:
        conn.execute(insert(reclassifications).values(
            id=uuid.uuid4().hex, case_id=case_id, at=at, actor="advocate1", machine_category="general",
            machine_urgency="low", old_category="general", old_urgency="low", new_category=new_category,
            new_urgency="normal", reason=reason))


def expected_counts(contacts: list[Contact], dimension: str) -> dict[str, int]:
    def value(c: Contact) -> str:
        return {
            "category": c.category,
            "channel": c.channel,
            "language": c.language,
            "state": c.state or "unknown",
            "trafficking_type": c.ttype,
            "minor_involved": "yes" if c.minor else "no",
            "month": c.received_at.astimezone(UTC).strftime("%Y-%m"),
        }[dimension]

    return dict(Counter(value(c) for c in contacts))


@pytest.fixture
def generated(runtime) -> tuple[list[Contact], Stored]:
    contacts = generate(seed=20261206)
    return contacts, store_contacts(runtime, contacts)


# ---- what an outsider can compute from the published figures ----------------------------------


def shown_numbers(table: SuppressedTable) -> list[int]:
    return [int(c.display) for c in (*table.rows, table.total) if c.display.isdigit()]


def inferred_ranges(table: SuppressedTable) -> dict[str, set[int]]:
    """Every value each hidden cell can take, given the published total, the visible cells and what
    the markers mean ("<T" = 1..T-1, "suppressed" = T or more). Brute force, independent of the code."""
    if table.total.value is None or not any(c.suppressed for c in table.rows):
        return {}
    rest = table.total.value - sum(c.value for c in table.rows if c.value is not None)
    bounds = {c.label: (1, table.threshold - 1) if c.display == f"<{table.threshold}" else (table.threshold, rest)
              for c in table.rows if c.suppressed}
    assert all(c.display in (f"<{table.threshold}", COMPLEMENTARY_DISPLAY) for c in table.rows if c.suppressed)
    out = {}
    for label, (lo, hi) in bounds.items():
        others = [b for k, b in bounds.items() if k != label]
        low_sum, high_sum = sum(b[0] for b in others), sum(b[1] for b in others)
        out[label] = {v for v in range(lo, hi + 1) if low_sum <= rest - v <= high_sum}
    return out


def assert_safe(table: SuppressedTable) -> None:
    t = table.threshold
    assert all(n == 0 or n >= t for n in shown_numbers(table)), table  # 0: an empty period
    for label, values in inferred_ranges(table).items():
        cell = next(c for c in table.rows if c.label == label)
        assert len(values) > 1, f"{label} can be worked out: {values}"
        if cell.display == f"<{t}":
            assert values == set(range(1, t)), f"{label} narrowed to {sorted(values)}"


# ---- suppression: the rule, case by case -----------------------------------------------------------


def rows(table: SuppressedTable) -> list[tuple[str, str]]:
    return [(c.label, c.display) for c in table.rows]


@pytest.mark.parametrize(("counts", "expected_rows", "total"), [
    pytest.param({"sms": 120, "voice": 40}, [("sms", "120"), ("voice", "40")], "160", id="no-small-cells"),
    pytest.param({"tip": 100, "crisis": 3, "tta": 50}, [("tip", "100"), ("crisis", "<10"), ("tta", "suppressed")],
                 "153", id="one-small-cell-hides-the-smallest-large-enough-cell"),
    pytest.param({"a": 100, "b": 3, "c": 11, "d": 12},
                 [("d", "12"), ("c", "11"), ("a", "suppressed"), ("b", "<10")], "126",
                 id="cells-just-over-the-threshold-would-give-the-small-one-away"),
    pytest.param({"en": 200, "es": 0, "fr": 2}, [("en", "suppressed"), ("fr", "<10")], "202",
                 id="zero-omitted"),
    pytest.param({"TX": 5, "CA": 5, "NY": 5, "OH": 5, "FL": 5, "WA": 5, "OR": 5, "NV": 5, "AZ": 5, "UT": 5},
                 [(s, "<10") for s in ("AZ", "CA", "FL", "NV", "NY", "OH", "OR", "TX", "UT", "WA")], "50",
                 id="many-small-cells-whose-sum-reveals-none"),
    pytest.param({"yes": 5, "no": 6}, [], "11", id="two-small-cells-cannot-be-protected-withheld"),
    pytest.param({"yes": 1, "no": 10}, [], "11", id="threshold-cell-would-reveal-the-one-withheld"),
    pytest.param({"fr": 4, "zh": 3}, [], "<10", id="total-below-threshold-withheld"),
    pytest.param({}, [], "0", id="empty"),
])
def test_suppression_rule(counts, expected_rows, total):
    table = suppress(counts, T)
    assert rows(table) == expected_rows
    assert table.total.display == total
    assert table.withheld == (not expected_rows and total != "0")
    assert_safe(table)


def test_months_are_listed_chronologically_with_hidden_months_in_place():
    table = suppress({"2026-02": 40, "2025-12": 3, "2026-01": 55, "2025-11": 80}, T, chronological=True)
    assert rows(table) == [("2025-11", "80"), ("2025-12", "<10"), ("2026-01", "55"), ("2026-02", "suppressed")]


def test_hidden_rows_are_ordered_by_label_not_by_their_size():
    table = suppress({"zz": 9, "aa": 2, "mm": 9, "big": 300, "bigger": 400}, T)
    assert rows(table) == [("bigger", "400"), ("aa", "<10"), ("big", "suppressed"), ("mm", "<10"), ("zz", "<10")]


@pytest.mark.parametrize("threshold", [3, 5, 10, 11, 20])
def test_threshold_is_what_the_marker_says(threshold):
    table = suppress({"a": 1, "b": threshold - 1, "c": threshold, "d": 10 * threshold}, threshold)
    assert {c.label: c.display for c in table.rows}["a"] == f"<{threshold}"
    assert {c.label: c.display for c in table.rows}["b"] == f"<{threshold}"
    assert_safe(table)


@hsettings(max_examples=400, deadline=None)
@given(counts=st.dictionaries(st.sampled_from([f"v{i}" for i in range(12)]), st.integers(0, 60), max_size=12),
       threshold=st.integers(3, 15))
def test_no_small_cell_survives_a_differencing_attack(counts, threshold):
    table = suppress(counts, threshold)
    assert_safe(table)
    published = {c.label: c.value for c in table.rows if c.value is not None}
    assert all(counts[k] == v for k, v in published.items())  # what is shown is true
    if sum(counts.values()) >= threshold:
        assert table.total.value == sum(counts.values())


def test_tables_differing_only_in_hidden_counts_publish_the_same_bytes():
    a = suppress({"tip": 100, "crisis": 3, "tta": 50}, T)
    b = suppress({"tip": 100, "crisis": 8, "tta": 45}, T)
    assert a == b
    assert bar_chart_svg(a, "Category") == bar_chart_svg(b, "Category")
    assert to_csv({"category": a}) == to_csv({"category": b})


@pytest.mark.parametrize(("counts", "threshold"), [({"a": 0}, 1), ({"a": -1}, T)])
def test_bad_input_is_refused(counts, threshold):
    with pytest.raises(ValueError):
        suppress(counts, threshold)


# ---- CSV and SVG -----------------------------------------------------------------------------------


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(("label", "written"), [
    ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ("+SUM(A1)", "'+SUM(A1)"),
    ("-2+3", "'-2+3"),
    ("@import", "'@import"),
    ("\t=1+1", "'\t=1+1"),
    (" =1+1", "' =1+1"),
    ("es", "es"),
    ("2026-01", "2026-01"),
])
def test_csv_neutralises_formulas(label, written):
    table = SuppressedTable((Cell(label, "25", 25, False),), Cell("total", "25", 25, False), T)
    [row, total] = parse_csv(to_csv({"language": table}))
    assert row == {"dimension": "language", "value": written, "count": "25"}
    assert total == {"dimension": "language", "value": "total", "count": "25"}


def test_csv_has_one_row_per_published_cell_and_a_total_per_dimension():
    tables = {"channel": suppress({"sms": 120, "voice": 3, "email": 40}, T), "month": suppress({"2026-01": 4}, T)}
    assert parse_csv(to_csv(tables)) == [
        {"dimension": "channel", "value": "sms", "count": "120"},
        {"dimension": "channel", "value": "email", "count": "suppressed"},
        {"dimension": "channel", "value": "voice", "count": "<10"},
        {"dimension": "channel", "value": "total", "count": "163"},
        {"dimension": "month", "value": "total", "count": "<10"},
    ]


def svg_bars(svg: str) -> dict[str, tuple[str, str]]:
    """label -> (bar width, shown text) as a sighted reader sees them."""
    root = ET.fromstring(svg)
    texts = [t for t in root.iter(f"{SVG_NS}text")]
    bars = [r for r in root.iter(f"{SVG_NS}rect") if r.get("x") and r.get("x") != "0"]
    labels = [t.text for t in texts if t.get("text-anchor") == "end"]
    values = [t.text for t in texts if t.get("text-anchor") is None and t.get("y") not in ("18",)]
    return {label: (bar.get("width"), value) for label, bar, value in zip(labels, bars, values, strict=False)}


def test_svg_chart_is_accessible_and_self_contained():
    table = suppress({"sms": 120, "voice": 3, "email": 40, "webform": 60}, T)
    svg = bar_chart_svg(table, "Contacts by channel")
    root = ET.fromstring(svg)
    assert root.get("role") == "img" and root.get("aria-label") == "Contacts by channel"
    assert root.find(f"{SVG_NS}title").text == "Contacts by channel"
    desc = root.find(f"{SVG_NS}desc").text
    assert "voice: <10" in desc and "sms: 120" in desc and "total: 223" in desc
    assert "<script" not in svg and "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in svg and "href" not in svg.replace("url(#", "")


def test_svg_bars_follow_published_counts_and_hidden_cells_get_one_fixed_bar():
    small = bar_chart_svg(suppress({"a": 400, "b": 200, "c": 1, "d": 30, "e": 8}, T), "x")
    bars = svg_bars(small)
    assert bars["a"] == ("340", "400") and bars["b"] == ("170", "200")
    assert bars["c"][1] == "<10" and bars["e"][1] == "<10" and bars["d"][1] == "suppressed"
    assert bars["c"][0] == bars["d"][0] == bars["e"][0]


def test_svg_withheld_table_says_so_without_rows():
    svg = bar_chart_svg(suppress({"fr": 2, "zh": 1}, T), "Languages")
    assert "Breakdown withheld" in svg and "Total: &lt;10" in svg
    assert ">fr<" not in svg and ">zh<" not in svg


# ---- from the database -----------------------------------------------------------------------------


def test_counts_match_the_generated_contacts(runtime, generated):
    contacts, _ = generated
    for dimension in DIMENSIONS:
        assert count_by(runtime.store.engine, dimension, None, None) == expected_counts(contacts, dimension), dimension


def test_every_table_covers_the_same_contacts(runtime, generated):
    contacts, _ = generated
    tables = statistics(runtime.store.engine, None, None, T)
    assert set(tables) == set(DIMENSIONS)
    assert {t.total.value for t in tables.values()} == {len(contacts)}


def test_no_published_count_is_below_the_threshold(runtime, generated):
    tables = statistics(runtime.store.engine, None, None, T)
    assert any(c.display == "<10" for t in tables.values() for c in t.rows)  # the data has small cells
    for table in tables.values():
        assert all(n >= T for n in shown_numbers(table))
    for row in parse_csv(to_csv(tables)):
        assert row["count"] in ("<10", COMPLEMENTARY_DISPLAY) or int(row["count"]) >= T, row
    for dimension, table in tables.items():
        svg = bar_chart_svg(table, dimension)
        for _label, (_width, shown) in svg_bars(svg).items():
            assert shown in ("<10", COMPLEMENTARY_DISPLAY) or int(shown) >= T


def test_no_hidden_cell_can_be_worked_out_from_the_total(runtime, generated):
    tables = statistics(runtime.store.engine, None, None, T)
    assert any(inferred_ranges(t) for t in tables.values())  # the attack has something to try
    for table in tables.values():
        assert_safe(table)


def test_no_identifier_or_message_text_in_any_output(runtime, generated):
    _, stored = generated
    reclassify(runtime, stored.case_ids[0], "crisis", NOW, reason="Invented reason: caller named Quenby")
    tables = statistics(runtime.store.engine, None, None, T)
    published = "\n".join([repr(tables), to_csv(tables), *(bar_chart_svg(t, d) for d, t in tables.items())])
    assert len(stored.sender_hashes) == len(stored.signal_ids)  # the test knows what to look for
    for secret in [*stored.secrets(), "Quenby", "orchard"]:
        assert secret not in published
    # and nothing shaped like one: a 32/64-hex id or hash, a case number, a phone number
    assert not re.search(r"[0-9a-f]{32}|HT-[0-9A-Z]{4}-|\+1\d{10}|555-?01\d\d", published.replace(
        "http://www.w3.org/2000/svg", ""))


def test_latest_reclassification_overrides_the_machine_for_every_signal_of_the_case(runtime):
    day = datetime(2026, 2, 3, 15, tzinfo=UTC)
    contacts = [Contact(day, category="general"), Contact(day, category="general", joins=0),
                Contact(day, category="tip"), Contact(day, category="tip")]
    stored = store_contacts(runtime, contacts)
    engine = runtime.store.engine
    assert count_by(engine, "category", None, None) == {"general": 2, "tip": 2}
    reclassify(runtime, stored.case_ids[0], "tip", day + timedelta(hours=1))
    assert count_by(engine, "category", None, None) == {"tip": 4}
    reclassify(runtime, stored.case_ids[0], "crisis", day + timedelta(hours=3))
    reclassify(runtime, stored.case_ids[0], "referral", day + timedelta(hours=2))  # older: loses
    assert count_by(engine, "category", None, None) == {"crisis": 2, "tip": 2}


@pytest.mark.parametrize(("received", "month"), [
    (datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC), "2026-01"),
    (datetime(2026, 2, 1, 0, 0, 0, tzinfo=UTC), "2026-02"),
    # 23:30 in New York on 31 January is 04:30 UTC on 1 February
    (datetime.fromisoformat("2026-01-31T23:30:00-05:00"), "2026-02"),
    # 01:00 on 1 January in Tokyo is 16:00 UTC on 31 December
    (datetime.fromisoformat("2026-01-01T01:00:00+09:00"), "2025-12"),
])
def test_month_is_the_utc_month(runtime, received, month):
    store_contacts(runtime, [Contact(received)])
    assert count_by(runtime.store.engine, "month", None, None) == {month: 1}


@pytest.mark.parametrize(("since", "until", "expected"), [
    (None, None, {"2026-01": 2, "2026-02": 2}),
    (date(2026, 2, 1), None, {"2026-02": 2}),
    (None, date(2026, 1, 31), {"2026-01": 2}),
    (date(2026, 1, 31), date(2026, 2, 1), {"2026-01": 1, "2026-02": 1}),
    (date(2026, 3, 1), date(2026, 3, 31), {}),
])
def test_period_is_whole_utc_days_both_ends_inclusive(runtime, since, until, expected):
    store_contacts(runtime, [Contact(datetime(2026, 1, 2, 0, 0, tzinfo=UTC)),
                             Contact(datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC)),
                             Contact(datetime(2026, 2, 1, 0, 0, tzinfo=UTC)),
                             Contact(datetime(2026, 2, 28, 23, 0, tzinfo=UTC))])
    assert count_by(runtime.store.engine, "month", since, until) == expected


def test_untriaged_signals_are_not_counted(runtime):
    store_contacts(runtime, [Contact(datetime(2026, 1, 2, tzinfo=UTC))])
    runtime.store.insert_signal(Signal(channel=Channel.SMS, external_id="EXT-untriaged",
                                       received_at=datetime(2026, 1, 3, tzinfo=UTC), text="Invented"), NOW)
    assert count_by(runtime.store.engine, "channel", None, None) == {"sms": 1}


def test_unknown_dimension_is_refused(runtime):
    with pytest.raises(ValueError, match="unknown dimension"):
        count_by(runtime.store.engine, "sender_hash", None, None)


def test_hostile_labels_come_out_escaped_in_svg_and_inert_in_csv(runtime):
    day = datetime(2026, 2, 3, 15, tzinfo=UTC)
    contacts = [Contact(day, language="en", state="TX") for _ in range(30)]
    contacts += [Contact(day, language="<script>x", state="<script>") for _ in range(12)]
    contacts += [Contact(day, language="=cmd|'/C calc", state="=1+1") for _ in range(12)]
    store_contacts(runtime, contacts)
    tables = statistics(runtime.store.engine, None, None, T)
    assert {c.label for c in tables["state"].rows} == {"TX", "<script>", "=1+1"}
    for dimension in ("language", "state"):
        svg = bar_chart_svg(tables[dimension], f"By {dimension} <b>")
        assert "<script" not in svg and "<b>" not in svg
        assert "&lt;script&gt;" in svg and "By " + dimension + " &lt;b&gt;" in svg
        ET.fromstring(svg)  # still well-formed XML
    values = {row["value"] for row in parse_csv(to_csv(tables))}
    assert {"'=cmd|'/C calc", "'=1+1", "<script>x", "<script>"} <= values
    assert not any(v.startswith(("=", "+", "-", "@")) for v in values)


@pytest.mark.parametrize(("received", "month"), [
    (datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC), "2026-01"),
    (datetime.fromisoformat("2026-01-31T23:30:00-05:00"), "2026-02"),
    (datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC), "2026-12"),
])
def test_month_grouping_on_any_other_database_uses_extract_and_reads_the_same(runtime, received, month):
    from sqlalchemy import select, text

    from console.stats import _label, _utc_month
    from intake.store import signals

    store_contacts(runtime, [Contact(received)])
    engine = runtime.store.engine
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SET TIME ZONE 'UTC'"))  # what a database storing naive UTC reads
        [value] = conn.execute(select(_utc_month("generic", signals.c.received_at))).scalars().all()
    assert _label("month", value) == month
