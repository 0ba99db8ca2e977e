"""Optional, size-limited fetch of MMS media: records size and sha256, never keeps the content."""

from __future__ import annotations

import base64
import hashlib
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime

from .runtime import Runtime

log = logging.getLogger(__name__)


def fetch_media(rt: Runtime, signal_id: str) -> int:
    """Fetch each media URL of an SMS signal (Twilio basic auth when configured). Returns how
    many were hashed; too-large or unreachable ones are recorded with their reason."""
    stored = rt.store.load_signal(signal_id)
    if stored is None:
        return 0
    limit = rt.settings.sms.max_media_bytes
    t = rt.settings.twilio
    done = 0
    for idx, media in enumerate(stored.signal.raw.get("media") or []):
        url = str(media.get("url") or "")
        now = datetime.now(UTC)
        if not url.startswith(("https://", "http://")):
            rt.store.attachment_record(signal_id, idx, "skipped: not an http(s) URL", now)
            continue
        req = urllib.request.Request(url)  # noqa: S310 - scheme checked above
        if t.account_sid and t.auth_token:
            token = base64.b64encode(f"{t.account_sid}:{t.auth_token}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:  # noqa: S310 - scheme checked above
                data = resp.read(limit + 1)
                ctype = resp.headers.get_content_type()
        except (urllib.error.URLError, OSError) as exc:
            rt.store.attachment_record(signal_id, idx, f"failed: {exc.__class__.__name__}", now)
            continue
        if len(data) > limit:
            rt.store.attachment_record(signal_id, idx, "skipped: too large", now, content_type=ctype)
            continue
        rt.store.attachment_record(signal_id, idx, "fetched", now, content_type=ctype, size=len(data),
                                   sha256=hashlib.sha256(data).hexdigest())
        done += 1
    log.info("media: signal %s, %d attachment(s) hashed", signal_id, done)
    return done
