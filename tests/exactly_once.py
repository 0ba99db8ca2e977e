"""Helpers for the fault and scale-out tests: exact counts from the database, a private
redis-server, a TCP proxy in front of RabbitMQ that the test can take down, and processes
started in their own process groups."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from conftest import CONFIG, REPO, _need_servers
from sqlalchemy import select

from intake.store import Store, case_events, cases, outbox, routes, signals, triage_results

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.1) -> T:
    """Poll until predicate() is truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def test_config(tmp_path: Path, replacements: Mapping[str, str], name: str = "config.yaml") -> Path:
    """config.yaml with exact text replacements; an old text that is not there fails loudly
    (so a renamed setting cannot silently make a test run with defaults)."""
    text = CONFIG.read_text()
    for old, new in replacements.items():
        assert old in text, f"config.yaml no longer contains {old!r}"
        text = text.replace(old, new)
    path = tmp_path / name
    path.write_text(text)
    return path


test_config.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


# ---- exact counts ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Tally:
    accepted: int            # signal rows
    triaged_once: int        # triaged, with exactly its one result and one route, on its case
    triage_results: int
    routes: int
    cases: int
    cases_without_route: int
    cases_opened_twice: int  # a case whose 'opened' audit entry names more than one signal
    events: int              # signal.routed events in the outbox
    signals_with_one_event: int
    published: int           # of those, published to the broker

    def line(self) -> str:
        return (f"accepted={self.accepted} triaged_once={self.triaged_once} results={self.triage_results} "
                f"routed={self.routes} cases={self.cases} events={self.events} "
                f"events_one_per_signal={self.signals_with_one_event} published={self.published}")


def tally(store: Store) -> Tally:
    with store.engine.connect() as conn:
        sig = conn.execute(select(signals.c.id, signals.c.status, signals.c.case_id)).all()
        results = Counter(r.signal_id for r in conn.execute(select(triage_results.c.signal_id)))
        route_rows = conn.execute(select(routes.c.signal_id, routes.c.case_id)).all()
        case_ids = [r.id for r in conn.execute(select(cases.c.id))]
        opened = Counter(r.case_id for r in conn.execute(
            select(case_events.c.case_id).where(case_events.c.action == "opened")))
        events = [(r.body, r.published_at) for r in conn.execute(select(outbox.c.body, outbox.c.published_at))]
    route_of = Counter(r.signal_id for r in route_rows)
    route_case = {r.signal_id: r.case_id for r in route_rows}
    routed_cases = set(route_case.values())
    routed_events = [(b, p) for b, p in events if (b or {}).get("event") == "signal.routed"]
    per_signal = Counter(b.get("signal_id") for b, _ in routed_events)
    return Tally(
        accepted=len(sig),
        triaged_once=sum(1 for s in sig if s.status == "triaged" and results[s.id] == 1 and route_of[s.id] == 1
                         and route_case[s.id] == s.case_id),
        triage_results=sum(results.values()),
        routes=len(route_rows),
        cases=len(case_ids),
        cases_without_route=sum(1 for c in case_ids if c not in routed_cases),
        cases_opened_twice=sum(1 for n in opened.values() if n > 1),
        events=len(routed_events),
        signals_with_one_event=sum(1 for s in sig if per_signal[s.id] == 1),
        published=sum(1 for _, p in routed_events if p is not None),
    )


def assert_exactly_once(t: Tally, n: int, cases: int | None = None, published: bool = True) -> None:
    """N accepted = N triaged exactly once = N routed, one case each (unless `cases` says how many
    conversations there were), one route event per signal, and (by default) every one published."""
    expected = {"accepted": n, "triaged_once": n, "triage_results": n, "routes": n,
                "cases": n if cases is None else cases, "cases_without_route": 0, "cases_opened_twice": 0,
                "events": n, "signals_with_one_event": n}
    if published:
        expected["published"] = n
    got = {k: getattr(t, k) for k in expected}
    assert got == expected, t.line()


# ---- a private redis-server --------------------------------------------------------------------

class RedisServer:
    """A real redis-server without persistence, on a free port, that a test may kill -9 and start
    again (the machine's shared Redis must never be restarted: other tests use it)."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            msg = "redis-server binary not found"
            if os.environ.get("HOTLINE_TEST_REQUIRE_SERVERS"):
                pytest.fail(msg)
            pytest.skip(msg)
        self.binary = binary
        self.port = free_port()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        from redis import Redis

        def up() -> bool:
            try:
                return bool(Redis(port=self.port, socket_connect_timeout=0.5).ping())
            except OSError:
                return False
            except Exception:
                return False

        wait_for(up, 30, f"redis-server on port {self.port}")
        return self

    def kill(self) -> None:
        """kill -9: everything queued in it is gone (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    stop = kill


# ---- a TCP proxy in front of RabbitMQ ----------------------------------------------------------

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
BASIC_PUBLISH = (60, 40)


class AmqpProxy:
    """Forwards 127.0.0.1:<port> to RabbitMQ. Modes:

    up      forward everything
    down    accept and close at once (the broker is gone)
    cut     forward the handshake; at the first basic.publish from the client, drop it and
            everything after it, close both sides half a second later and go `down` - the
            broker vanished while routes were being published (what it never received it can
            never have routed)."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5672)) -> None:
        _need_servers(upstream[1])
        self.upstream = upstream
        self.mode = "up"
        self.forwarded_publishes = 0
        self.dropped_publishes = 0
        self.cuts = 0
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="amqp-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return RABBIT.replace(":5672/", f":{self.port}/")

    def set_mode(self, mode: str) -> None:
        assert mode in ("up", "down", "cut")
        with self._lock:
            self.mode = mode
            live = list(self._live) if mode == "down" else []
        for s in live:
            _close(s)

    def close(self) -> None:
        self._stopped.set()
        _close(self._listener)
        self.set_mode("down")
        self._thread.join(5)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "down":
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            server.settimeout(None)
            with self._lock:
                self._live.update((client, server))
            state = {"cut": False}
            threading.Thread(target=self._client_to_server, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(server, client, state), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        buf, header_done = b"", False
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                if state["cut"]:
                    continue
                buf += data
                out = b""
                if not header_done and len(buf) >= len(AMQP_HEADER):
                    out, buf, header_done = buf[:len(AMQP_HEADER)], buf[len(AMQP_HEADER):], True
                while header_done and len(buf) >= 7:
                    ftype, _channel, size = struct.unpack(">BHI", buf[:7])
                    if len(buf) < 8 + size:
                        break
                    frame, buf = buf[:8 + size], buf[8 + size:]
                    publish = ftype == 1 and size >= 4 and struct.unpack(">HH", frame[7:11]) == BASIC_PUBLISH
                    if publish and self.mode == "cut":
                        self._cut(client, server, state)
                        break
                    if publish:
                        with self._lock:
                            self.forwarded_publishes += 1
                    out += frame
                if out:
                    server.sendall(out)
                if state["cut"]:
                    with self._lock:
                        self.dropped_publishes += 1
        except OSError:
            pass
        finally:
            if not state["cut"]:
                self._forget(client, server)

    def _cut(self, client: socket.socket, server: socket.socket, state: dict[str, bool]) -> None:
        state["cut"] = True
        with self._lock:
            self.cuts += 1
            self.mode = "down"
        # The client keeps writing into the void for a moment, then the connection drops.
        threading.Timer(0.5, self._forget, args=(client, server)).start()

    def _server_to_client(self, server: socket.socket, client: socket.socket, state: dict[str, bool]) -> None:
        try:
            while True:
                data = server.recv(65536)
                if not data:
                    break
                if not state["cut"]:
                    client.sendall(data)
        except OSError:
            pass
        finally:
            if not state["cut"]:
                self._forget(client, server)

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for s in socks:
                self._live.discard(s)
        for s in socks:
            _close(s)


def _close(s: socket.socket) -> None:
    with suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with suppress(OSError):
        s.close()


# ---- processes -----------------------------------------------------------------------------------

def start_process(args: list[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python -m workers.cli ARGS` in its own process group, output to `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "workers.cli", *args], env={**os.environ, **env}, cwd=REPO,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 15) -> None:
    """SIGTERM to the process group, SIGKILL if it does not stop within `grace` seconds."""
    if proc is None or proc.poll() is not None:
        with suppress(ProcessLookupError, PermissionError):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers of a group whose leader is gone
        return
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Every process appended to the yielded list is stopped on the way out, failure or not."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:  # all at once, so they shut down in parallel
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in started:
            stop_process(proc)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---- a consumer of route events -------------------------------------------------------------------

RABBIT = "amqp://guest:guest@127.0.0.1:5672//"


class EventCollector:
    """A queue of its own bound to the route-event exchange (all keys), read straight from
    RabbitMQ, not through any proxy."""

    def __init__(self, exchange_name: str, broker_url: str = RABBIT) -> None:
        from kombu import Connection, Exchange, Queue

        _need_servers(5672)
        self.conn = Connection(broker_url)
        exchange = Exchange(exchange_name, type="topic", durable=True)
        self.queue = Queue(f"{exchange_name}.collector", exchange=exchange, routing_key="#", durable=False,
                           auto_delete=False, exclusive=True)(self.conn.default_channel)
        exchange(self.conn.default_channel).declare()
        self.queue.declare()
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def collect(self) -> list[tuple[str, dict[str, Any]]]:
        """Everything delivered so far (acked), in arrival order."""
        while True:
            msg = self.queue.get(no_ack=False, accept=["json"])
            if msg is None:
                return self.messages
            self.messages.append((msg.delivery_info["routing_key"], msg.payload))
            msg.ack()

    def by_event_id(self) -> Counter[str]:
        return Counter(str(body.get("event_id")) for _, body in self.collect())

    def close(self) -> None:
        with suppress(Exception):
            self.queue.delete()
        self.conn.release()
