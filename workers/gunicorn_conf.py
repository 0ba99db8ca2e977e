"""gunicorn settings for the web process: `hotline serve` uses them, and so can a process
manager running gunicorn itself:

    gunicorn -c python:workers.gunicorn_conf

Defaults come from config.yaml (`service.host`, `service.port`, `service.web_processes`,
`service.web_threads`); the environment overrides a few, for deployments:

    WEB_CONCURRENCY        web processes on this host (gunicorn's own convention)
    FORWARDED_ALLOW_IPS    addresses of the proxies whose X-Forwarded-* headers are trusted
    HOTLINE_ACCESS_LOG     access log file; "-" = stdout (the default), empty = none

Command-line flags (`--bind`, `--workers`, …) override this file, as usual with gunicorn.
"""

from __future__ import annotations

import os
import sys

from workers.settings import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as exc:  # one line and exit 2, as every hotline command
    print(f"gunicorn: configuration error: {exc}", file=sys.stderr)
    sys.exit(2)

wsgi_app = "workers.web:app_from_env()"
bind = [f"{_settings.service.host}:{_settings.service.port}"]

# gthread: threads absorb slow clients (measured 2.9x Flask's development server). Each process
# builds its own database pool and Redis connection after the fork (no preload_app), so no
# socket is ever shared between processes.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or _settings.service.web_processes)
threads = _settings.service.web_threads
preload_app = False

# A webhook answers in milliseconds; a process silent for 30 s is stuck: killed and replaced.
timeout = 30
# On deploy or SIGTERM, requests in flight get 20 s to finish (Twilio waits 15 s for an answer).
graceful_timeout = 20
# Behind a load balancer keep idle connections open longer than its own idle timeout (often
# 60 s), so that the balancer, not gunicorn, closes them (no 502 race). gthread parks idle
# connections in its poller: they hold no thread.
keepalive = 65
# Recycle each process now and then: bounds any slow leak, never all at once.
max_requests = 20_000
max_requests_jitter = 2_000
# Heartbeat files on tmpfs where there is one: a slow disk must not get workers killed.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108

# Only the proxy in front may say the request came over https (X-Forwarded-Proto): with
# service.public_base_url unset, Twilio signatures are checked against the URL the request
# claims. Set FORWARDED_ALLOW_IPS to the proxy's address; "*" only if nothing else can
# reach this port.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Access log: method, path without the query string, status, size, seconds. No client
# address, user agent or referrer: a tip-form visitor's IP address and browser identify them.
accesslog = os.environ.get("HOTLINE_ACCESS_LOG", "-") or None
access_log_format = '"%(m)s %(U)s" %(s)s %(B)s %(L)ss'
errorlog = "-"
loglevel = "info"
# gunicorn's control socket is one path per user ($HOME/.gunicorn/gunicorn.ctl): several
# servers on a host would take it from each other, and nothing here uses it.
control_socket_disable = True
