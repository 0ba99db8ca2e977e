"""Triage quality against people's labels: every case a person reclassified (their label) or
closed without changing (the machine's label, confirmed), compared with what the machine said."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from intake.store import cases
from triage.result import CATEGORIES

from .models import reclassifications


@dataclass(frozen=True)
class Labelled:
    month: str  # YYYY-MM of the case's opening
    machine: str
    human: str


def labelled_cases(engine: Engine) -> list[Labelled]:
    with engine.connect() as conn:
        recl = conn.execute(select(reclassifications.c.case_id, reclassifications.c.machine_category,
                                   reclassifications.c.new_category, reclassifications.c.at)
                            .order_by(reclassifications.c.at)).all()
        first: dict[str, str] = {}
        last: dict[str, str] = {}
        for r in recl:
            first.setdefault(r.case_id, r.machine_category)
            last[r.case_id] = r.new_category
        rows = conn.execute(select(cases.c.id, cases.c.status, cases.c.category, cases.c.opened_at)).all()
    out = []
    for r in rows:
        if r.id in last:
            out.append(Labelled(r.opened_at.strftime("%Y-%m"), first[r.id], last[r.id]))
        elif r.status == "closed":
            out.append(Labelled(r.opened_at.strftime("%Y-%m"), r.category, r.category))
    return out


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def summarise(items: Iterable[Labelled]) -> dict[str, Any]:
    """Crisis precision and recall, agreement, and the machine-vs-human confusion, overall and
    per month (oldest first). None where there is nothing to divide by."""
    items = list(items)

    def figures(group: list[Labelled]) -> dict[str, Any]:
        tp = sum(1 for i in group if i.machine == "crisis" and i.human == "crisis")
        fp = sum(1 for i in group if i.machine == "crisis" and i.human != "crisis")
        fn = sum(1 for i in group if i.machine != "crisis" and i.human == "crisis")
        agree = sum(1 for i in group if i.machine == i.human)
        return {"labelled": len(group), "crisis_precision": _ratio(tp, tp + fp),
                "crisis_recall": _ratio(tp, tp + fn), "agreement": _ratio(agree, len(group)),
                "missed_crises": fn}

    conf = Counter((i.human, i.machine) for i in items)
    months = sorted({i.month for i in items})
    return {
        "overall": figures(items),
        "by_month": [{"month": m, **figures([i for i in items if i.month == m])} for m in months],
        "categories": list(CATEGORIES),
        # rows: the person's label; columns: what the machine said.
        "confusion": [[conf[(h, m)] for m in CATEGORIES] for h in CATEGORIES],
    }
