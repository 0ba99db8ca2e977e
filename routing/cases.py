"""Cases: ids, case numbers (format in intake/case_numbers.py) and severity ordering."""

from __future__ import annotations

from intake.case_numbers import new_case_id, new_case_number, normalize_case_number

__all__ = ["new_case_id", "new_case_number", "normalize_case_number"]
