"""Pages and webhooks for crises and SLA breaches.

With Twilio credentials, SMS and voice pages go through the Twilio REST client; without them
(the embedded default) each page is recorded in the notifications table, where the console
shows it. Every notification is stored once per (case, checkpoint, channel, target): a job
that runs twice never pages twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

from intake.store import Store

from .settings import Settings

log = logging.getLogger(__name__)


def make_twilio_client(settings: Settings) -> Any | None:
    t = settings.twilio
    if not (t.account_sid and t.auth_token):
        return None
    from twilio.rest import Client

    client = Client(t.account_sid, t.auth_token)
    if t.api_base_url:
        client.api.base_url = t.api_base_url.rstrip("/")
    return client


def sign_webhook(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(self, settings: Settings, store: Store, twilio_client: Any | None) -> None:
        self.settings = settings
        self.store = store
        self.twilio = twilio_client

    def page(self, case_id: str, case_number: str, point: str, text: str, voice: bool) -> list[str]:
        """Page on-call by SMS (and voice when asked); returns statuses, one per target."""
        n = self.settings.notifications
        statuses = []
        targets = [("sms", t) for t in n.on_call_sms] + ([("voice", t) for t in n.on_call_voice] if voice else [])
        for kind, target in targets:
            key = f"{case_id}:{point}:{kind}:{hashlib.sha256(target.encode()).hexdigest()[:16]}"
            status, provider_id, error = "recorded", None, None
            if self.twilio is not None:
                try:
                    if kind == "sms":
                        msg = self.twilio.messages.create(to=target, from_=n.from_number, body=text)
                    else:
                        from twilio.twiml.voice_response import VoiceResponse

                        twiml = VoiceResponse()
                        twiml.say(text)
                        twiml.pause(length=1)
                        twiml.say(text)
                        msg = self.twilio.calls.create(to=target, from_=n.from_number, twiml=str(twiml))
                    status, provider_id = "sent", msg.sid
                except Exception as exc:  # a page that failed is recorded as failed, never lost
                    status, error = "failed", exc.__class__.__name__
                    log.error("page for case %s via %s failed (%s)", case_number, kind, error)
            self.store.record_notification(case_id, kind, target, text, status, key, datetime.now(UTC),
                                           provider_id=provider_id, error=error)
            statuses.append(status)
        return statuses

    def webhook(self, case_id: str, point: str, payload: dict[str, Any]) -> list[str]:
        n = self.settings.notifications
        statuses = []
        body = json.dumps(payload, sort_keys=True).encode()
        for url in n.webhook_urls:
            key = f"{case_id}:{point}:webhook:{hashlib.sha256(url.encode()).hexdigest()[:16]}"
            status, error = "sent", None
            req = urllib.request.Request(url, data=body, method="POST", headers={  # noqa: S310 - http(s) validated
                "Content-Type": "application/json",
                "X-Hotline-Signature": sign_webhook(n.webhook_secret or "", body)})
            try:
                with urllib.request.urlopen(req, timeout=n.webhook_timeout_seconds) as resp:  # noqa: S310
                    if resp.status >= 300:
                        status, error = "failed", f"HTTP {resp.status}"
            except (urllib.error.URLError, OSError) as exc:
                status, error = "failed", exc.__class__.__name__
            self.store.record_notification(case_id, "webhook", url, body.decode(), status, key, datetime.now(UTC),
                                           error=error)
            statuses.append(status)
        return statuses
