"""Logging with a redaction filter: no phone number or email address reaches a log line."""

from __future__ import annotations

import logging
import re

_PHONE = re.compile(r"(?<![\w/])\+?\d[\d\s().-]{7,}\d(?![\w/])")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def redact(text: str) -> str:
    return _EMAIL.sub("[email]", _PHONE.sub("[phone]", text))


class RedactingFilter(logging.Filter):
    """Belt and braces: code logs ids only, and this catches what slips through."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not drop the record
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        return True


def configure_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if any(isinstance(f, RedactingFilter) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Alembic narrates every connection at INFO; workers.schema logs what a migration did.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    # SQLAlchemy's statement log prints result rows at DEBUG (parameters are hidden by
    # make_engine): never switched on by HOTLINE_DEBUG.
    logging.getLogger("sqlalchemy").setLevel(max(level, logging.WARNING))
