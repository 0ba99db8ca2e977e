"""Configuration: one clear message naming the file and key; env overrides; exit 2 from the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import CONFIG, REPO

from workers.settings import ConfigError, load_settings


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def with_change(tmp_path, old: str, new: str):
    text = CONFIG.read_text()
    assert old in text
    return write(tmp_path, text.replace(old, new, 1))


def test_shipped_config_loads():
    s = load_settings(CONFIG, env={})
    assert s.service.port == 5000
    assert s.sla.timezone == "America/New_York"
    assert s.storage.database_url is None


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("  port: 5000", "  port: 5000\n  prot: 1", "service.prot: unknown key"),
    ("  port: 5000", "  port: five", "service.port: Input should be a valid integer"),
    ("    - {category: tta, urgency: \"*\", queue: tta, business_days: 3}",
     "    - {category: tta, urgency: \"*\", queue: nowhere, business_days: 3}",
     "sla.routes.13.queue: 'nowhere' is not a team"),
    ("{category: crisis, urgency: \"*\", queue: crisis_line, minutes: 5}",
     "{category: crises, urgency: \"*\", queue: crisis_line, minutes: 5}",
     "sla.routes.0.category: unknown category 'crises'"),
    ("{category: crisis, urgency: \"*\", queue: crisis_line, minutes: 5}",
     "{category: crisis, urgency: \"*\", queue: crisis_line, minutes: 5, business_days: 1}",
     "give exactly one of 'minutes'"),
    ("  timezone: \"America/New_York\"", "  timezone: \"Mars/Olympus\"", "sms.hours.timezone: unknown time zone"),
    ("  workday_start: \"09:00\"", "  workday_start: \"9am\"", "sla.workday_start: must be HH:MM"),
])
def test_bad_config_names_file_and_key(tmp_path, old, new, expected):
    path = with_change(tmp_path, old, new)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_routes_must_cover_every_category_and_urgency(tmp_path):
    path = with_change(tmp_path, "    - {category: \"*\", urgency: \"*\", queue: advocates, business_days: 2}\n", "")
    with pytest.raises(ConfigError, match="no entry covers category="):
        load_settings(path, env={})


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "service:\n  port: [1, 2\n")
    with pytest.raises(ConfigError, match=r"config.yaml: line \d+"):
        load_settings(path, env={})


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_settings(tmp_path / "nope.yaml", env={})


def test_env_overrides_and_names_the_variable_when_wrong():
    s = load_settings(CONFIG, env={"HOTLINE_DATABASE_URL": "postgresql+psycopg://db/x", "HOTLINE_PORT": "8080",
                                   "HOTLINE_REDIS_URL": "redis://r:6379/0"})
    assert s.storage.database_url == "postgresql+psycopg://db/x"
    assert s.storage.redis_url == "redis://r:6379/0"
    assert s.service.port == 8080
    with pytest.raises(ConfigError, match=r"service.port: .*\[value from HOTLINE_PORT\]"):
        load_settings(CONFIG, env={"HOTLINE_PORT": "99999"})


def test_settings_are_frozen():
    s = load_settings(CONFIG, env={})
    with pytest.raises(Exception):  # noqa: B017 - pydantic raises ValidationError on frozen models
        s.service.port = 1  # type: ignore[misc]


def test_deployed_mode_refuses_to_run_without_secrets(tmp_path):
    from workers.runtime import with_dev_secrets

    s = load_settings(CONFIG, env={"HOTLINE_DATABASE_URL": "postgresql+psycopg://db/x",
                                   "HOTLINE_VAR_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"security\.secret_key .* required"):
        with_dev_secrets(s)


def test_embedded_mode_creates_private_dev_secrets_once(tmp_path):
    from workers.runtime import with_dev_secrets

    s = load_settings(CONFIG, env={"HOTLINE_VAR_DIR": str(tmp_path)})
    a, b = with_dev_secrets(s), with_dev_secrets(s)
    assert a.security.secret_key and a.twilio.auth_token
    assert (a.security.secret_key, a.twilio.auth_token) == (b.security.secret_key, b.twilio.auth_token)
    assert (tmp_path / "secrets.json").stat().st_mode & 0o077 == 0


def test_cli_reports_bad_config_with_exit_2_and_no_traceback(tmp_path):
    path = with_change(tmp_path, "  port: 5000", "  port: 5000\n  prot: 1")
    proc = subprocess.run([sys.executable, "-m", "workers.cli", "--config", str(path), "signals"],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOTLINE_VAR_DIR": str(tmp_path)})
    assert proc.returncode == 2
    assert "service.prot: unknown key" in proc.stderr
    assert str(path) in proc.stderr
    assert "Traceback" not in proc.stderr
