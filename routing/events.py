"""Route events on a kombu topic exchange (`hotline.routes`, keys like `crisis.immediate`).

Events are read from the database outbox and published with persistent delivery and a retry
policy; a broker outage leaves them in the outbox for the next pass. Bodies carry ids,
categories and deadlines, never message text or contact details.

Delivery is at least once: on AMQP each publish waits for the broker's confirm before the
event counts as sent (a basic.publish written to a socket the broker never read would
otherwise be marked published and lost). A confirm lost with the connection means the event
is sent again later: consumers de-duplicate on `event_id` (also the AMQP message_id).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from kombu import Connection, Exchange, Producer, Queue

log = logging.getLogger(__name__)

RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 1.0}
# Seconds to wait for the broker to confirm one publish (AMQP); past it the rest waits in the outbox.
CONFIRM_TIMEOUT = 5.0


def kombu_url(url: str) -> str:
    """kombu spells a Redis unix socket redis+socket:///path."""
    if url.startswith("unix://"):
        return "redis+socket://" + url.removeprefix("unix://")
    return url


def routing_key(category: str, urgency: str) -> str:
    return f"{category}.{urgency}"


class EventPublisher:
    def __init__(self, broker_url: str, exchange_name: str, connect_timeout: float = 2.0) -> None:
        self.url = kombu_url(broker_url)
        self.exchange = Exchange(exchange_name, type="topic", durable=True)
        self.connect_timeout = connect_timeout

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        # confirm_publish: publisher confirms on AMQP; other transports ignore it.
        conn = Connection(self.url, connect_timeout=self.connect_timeout,
                          transport_options={"max_retries": 1, "socket_timeout": self.connect_timeout,
                                             "confirm_publish": True})
        try:
            yield conn
        finally:
            conn.release()

    def publish(self, events: list[tuple[str, str, dict[str, Any]]],
                on_published: Callable[[list[str]], None]) -> int:
        """Publish (id, routing_key, body) in order; call on_published with the ids sent.
        Stops at the first failure (later events wait, keeping order). Returns the count."""
        if not events:
            return 0
        sent: list[str] = []
        try:
            with self._connection() as conn:
                conn.ensure_connection(max_retries=1, timeout=self.connect_timeout)
                producer = Producer(conn.channel(), exchange=self.exchange)
                producer.declare()
                for event_id, key, body in events:
                    producer.publish({**body, "event_id": event_id}, routing_key=key, serializer="json",
                                     delivery_mode=2, retry=True, retry_policy=RETRY_POLICY,
                                     message_id=event_id, content_encoding="utf-8",
                                     confirm_timeout=CONFIRM_TIMEOUT)
                    sent.append(event_id)
        except Exception as exc:  # broker down or refusing: the outbox keeps the rest
            log.warning("events: published %d of %d, broker unavailable (%s)", len(sent), len(events),
                        exc.__class__.__name__)
        finally:
            if sent:
                on_published(sent)
        return len(sent)


def tail(broker_url: str, exchange_name: str, binding: str, on_event: Callable[[str, dict[str, Any]], bool],
         timeout: float = 1.0) -> None:
    """Consume events matching `binding` (e.g. '#', 'crisis.*') until on_event returns False.

    Uses an exclusive, auto-deleted queue: a tail sees events published while it runs."""
    exchange = Exchange(exchange_name, type="topic", durable=True)
    with Connection(kombu_url(broker_url)) as conn:
        queue = Queue(f"hotline-tail-{uuid.uuid4().hex[:12]}", exchange=exchange, routing_key=binding,
                      exclusive=True, auto_delete=True, durable=False)
        keep_going = [True]

        def handle(body: dict[str, Any], message: Any) -> None:
            message.ack()
            keep_going[0] = on_event(message.delivery_info.get("routing_key", ""), body)

        with conn.Consumer(queue, callbacks=[handle], accept=["json"]):
            while keep_going[0]:
                try:
                    conn.drain_events(timeout=timeout)
                except TimeoutError:
                    keep_going[0] = on_event("", {}) is not False
