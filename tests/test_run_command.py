"""`hotline run` on a fresh var dir: starts, takes a simulated SMS, shows it, stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
from conftest import CONFIG, REPO

HOTLINE = str(Path(sys.executable).parent / "hotline")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _hotline(env, *args, timeout=60) -> subprocess.CompletedProcess:
    return subprocess.run([HOTLINE, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_run_simulate_signals_and_clean_stop(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({"HOTLINE_VAR_DIR": str(tmp_path / "var"), "HOTLINE_CONFIG": str(CONFIG),
                "HOTLINE_EMAIL_INBOUND_SECRET": "run-test-inbound-secret-0123456789"})
    run = subprocess.Popen([HOTLINE, "run", "--port", str(port)], env=env, cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(base + "/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert run.poll() is None, run.stdout.read()
            assert time.monotonic() < deadline, "hotline run did not become healthy in 60s"
            time.sleep(0.3)

        sim = _hotline(env, "simulate", "sms", "--from", "+15555550177", "--url", base,
                       "I want to report a suspicious massage parlor")
        assert sim.returncode == 0, sim.stderr
        assert "HTTP 200" in sim.stdout and "<Response>" in sim.stdout

        rows = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = _hotline(env, "signals", "--json")
            assert out.returncode == 0, out.stderr
            rows = json.loads(out.stdout)
            if rows and rows[0]["case_number"]:
                break
            time.sleep(0.5)
        [row] = [r for r in rows if r["channel"] == "sms"]
        assert row["category"] == "tip" and row["urgency"] == "normal"
        assert row["queue"] == "tips" and row["deadline"] and row["case_number"].startswith("HT-")

        call = _hotline(env, "simulate", "voice", "--from", "+15555550178", "--url", base, "--digits", "2",
                        "--transcript", "ayúdenme por favor, nos tienen encerradas en la casa")
        assert call.returncode == 0, call.stderr
        assert "<Enqueue" in call.stdout and "advocates-es" in call.stdout and "<Record" in call.stdout
        deadline = time.monotonic() + 60
        voice_rows = []
        while time.monotonic() < deadline and not voice_rows:
            rows = json.loads(_hotline(env, "signals", "--json").stdout)
            voice_rows = [r for r in rows if r["channel"] == "voice" and r["case_number"]]
            time.sleep(0.5)
        assert voice_rows and (voice_rows[0]["category"], voice_rows[0]["queue"]) == ("crisis", "crisis_line")

        tip = _hotline(env, "simulate", "tip", "--url", base, "--danger", "--state", "TX",
                       "Two girls are locked in a room behind the cantina right now")
        assert tip.returncode == 0 and "HTTP 201" in tip.stdout, tip.stdout + tip.stderr
        mail = _hotline(env, "simulate", "email", "--url", base, "I would like a training for our clinic staff.")
        assert mail.returncode == 0 and "HTTP 202" in mail.stdout, mail.stdout + mail.stderr
        deadline = time.monotonic() + 60
        seen: dict[str, dict] = {}
        while time.monotonic() < deadline and len(seen) < 2:
            rows = json.loads(_hotline(env, "signals", "--json").stdout)
            seen = {r["channel"]: r for r in rows if r["channel"] in ("webform", "email") and r["case_number"]}
            time.sleep(0.5)
        assert (seen["webform"]["category"], seen["webform"]["urgency"]) == ("crisis", "immediate")
        assert seen["email"]["category"] == "tta"

        family = psutil.Process(run.pid).children(recursive=True)
        redis_servers = [p for p in psutil.process_iter(["cmdline"])
                         if any(str(tmp_path) in part for part in (p.info["cmdline"] or []))
                         and "redis-server" in " ".join(p.info["cmdline"] or [])]
        assert len(family) >= 2 and redis_servers
    finally:
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        output, _ = run.communicate(timeout=60)
    assert run.returncode == 0, output
    assert "hotline stopped" in output
    assert "Traceback" not in output
    time.sleep(0.5)
    leftovers = [p for p in family + redis_servers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == []
    assert "5555550177" not in output  # the contact's number is nowhere in the output
