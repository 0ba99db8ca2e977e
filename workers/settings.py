"""Load config.yaml plus environment overrides into one frozen Settings object.

This is the only module that reads the configuration file or the environment; every other
package receives its section explicitly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CATEGORIES = ("crisis", "tip", "tta", "referral", "general", "at_risk", "unrelated")
URGENCIES = ("immediate", "high", "normal", "low")
CHANNELS = ("sms", "voice", "email", "webform")

ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "HOTLINE_DATABASE_URL": ("storage", "database_url"),
    "HOTLINE_REDIS_URL": ("storage", "redis_url"),
    "HOTLINE_BROKER_URL": ("storage", "broker_url"),
    "HOTLINE_TWILIO_AUTH_TOKEN": ("twilio", "auth_token"),
    "HOTLINE_TWILIO_ACCOUNT_SID": ("twilio", "account_sid"),
    "HOTLINE_SECRET_KEY": ("security", "secret_key"),
    "HOTLINE_PREVIOUS_SECRET_KEYS": ("security", "previous_secret_keys"),
    "HOTLINE_METRICS_TOKEN": ("security", "metrics_token"),
    "HOTLINE_PUBLIC_BASE_URL": ("service", "public_base_url"),
    "HOTLINE_PORT": ("service", "port"),
    "HOTLINE_VAR_DIR": ("service", "var_dir"),
    "HOTLINE_WEBHOOK_SECRET": ("notifications", "webhook_secret"),
    "HOTLINE_TWILIO_API_BASE_URL": ("twilio", "api_base_url"),
    "HOTLINE_EMAIL_INBOUND_SECRET": ("email", "inbound_secret"),
}
# Nested overrides: (section, subsection, key).
ENV_NESTED: dict[str, tuple[str, str, str]] = {
    "HOTLINE_IMAP_USERNAME": ("email", "imap", "username"),
    "HOTLINE_IMAP_PASSWORD": ("email", "imap", "password"),
    "HOTLINE_SMTP_USERNAME": ("email", "smtp", "username"),
    "HOTLINE_SMTP_PASSWORD": ("email", "smtp", "password"),
}


class ConfigError(Exception):
    """A configuration problem, with a message that names the file and key."""


def _time_zone(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {v!r}") from exc
    return v


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceSettings(_Frozen):
    name: str = "the Hotline"
    voice_number: str = "+1 555 0100"
    host: str = "127.0.0.1"
    port: int = Field(5000, ge=1, le=65535)
    public_base_url: str | None = None
    var_dir: str = "var"
    web_processes: int = Field(2, ge=1, le=64)
    web_threads: int = Field(8, ge=1, le=256)

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not re.match(r"^https?://[^/\s]+$", v.rstrip("/")):
            raise ValueError("must look like https://host[:port] with no path")
        return v.rstrip("/")


class StorageSettings(_Frozen):
    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    redis_connect_timeout: float = Field(1.0, gt=0, le=30)


class SecuritySettings(_Frozen):
    secret_key: str | None = None
    # Keys data may still be encrypted/hashed with (newest first); env: comma-separated.
    previous_secret_keys: tuple[str, ...] = ()
    # When set, GET /metrics needs "Authorization: Bearer <token>".
    metrics_token: str | None = Field(None, min_length=16)

    @field_validator("previous_secret_keys", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(k.strip() for k in v.split(",") if k.strip())
        return () if v is None else v

    @field_validator("previous_secret_keys")
    @classmethod
    def _long_enough(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i, key in enumerate(v):
            if len(key) < 32:
                raise ValueError(f"entry {i + 1} is shorter than 32 characters (not a key from `hotline keygen`)")
        return v


class TwilioSettings(_Frozen):
    auth_token: str | None = None
    account_sid: str | None = None
    api_base_url: str | None = None


class SmsHours(_Frozen):
    timezone: str = "America/New_York"
    weekly: dict[str, tuple[str, ...]] = {}
    holidays_country: str | None = "US"
    closed_dates: tuple[str, ...] = ()

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, v: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        from intake.channels.textline import WEEKDAYS, parse_window

        for day, windows in v.items():
            if day not in WEEKDAYS:
                raise ValueError(f"{day!r} is not a weekday (use {', '.join(WEEKDAYS)})")
            for w in windows:
                try:
                    parse_window(w)
                except ValueError as exc:
                    raise ValueError(f"{day}: {exc}") from exc
        return v

    @field_validator("closed_dates")
    @classmethod
    def _dates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import datetime as dt

        for d in v:
            try:
                dt.date.fromisoformat(d)
            except ValueError as exc:
                raise ValueError(f"{d!r} is not a date like 2026-12-24") from exc
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _time_zone(v)


class SmsReplies(_Frozen):
    greeting: str = Field(max_length=320)
    after_hours: str = Field(max_length=320)
    help: str = Field(max_length=320)


class SmsSettings(_Frozen):
    max_request_bytes: int = Field(65536, ge=1024, le=10_000_000)
    from_number: str = Field("233733", min_length=3, max_length=20)
    conversation_timeout_minutes: float = Field(240, gt=0, le=43_200)
    debounce_seconds: int = Field(15, ge=0, le=600)
    fetch_media: bool = False
    max_media_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    safe_word: str | None = None
    hours: SmsHours = SmsHours()
    replies: dict[str, SmsReplies] = {}

    @model_validator(mode="after")
    def _replies(self) -> SmsSettings:
        if "en" not in self.replies:
            raise ValueError("replies: an 'en' set of replies is required")
        return self


class VoicePrompts(_Frozen):
    voice: str
    language: str
    queue: str = Field(min_length=1, max_length=64)
    greeting: str
    danger: str
    menu: str
    hold: str
    voicemail: str
    interpreter: str
    thanks: str
    invalid: str


class VoiceSettings(_Frozen):
    max_request_bytes: int = Field(65536, ge=1024, le=10_000_000)
    menu_timeout_seconds: int = Field(6, ge=1, le=60)
    max_wait_seconds: int = Field(120, ge=5, le=3600)
    voicemail_max_seconds: int = Field(180, ge=10, le=3600)
    transcript_wait_minutes: float = Field(5, gt=0, le=120)
    crisis_queue: str = Field("crisis-priority", min_length=1, max_length=64)
    interpreter_number: str | None = None
    interpreter_sip: str | None = None
    interpreter_timeout_seconds: int = Field(30, ge=5, le=120)
    prompts: dict[str, VoicePrompts] = {}

    @model_validator(mode="after")
    def _needs_en_and_es(self) -> VoiceSettings:
        missing = [lang for lang in ("en", "es") if lang not in self.prompts]
        if missing:
            raise ValueError(f"prompts: missing language(s) {', '.join(missing)} (the menu offers both)")
        if self.interpreter_number and not re.match(r"^\+[1-9]\d{6,14}$", self.interpreter_number):
            raise ValueError("interpreter_number must be E.164, like +15555550150")
        if self.interpreter_sip and not self.interpreter_sip.startswith("sip:"):
            raise ValueError("interpreter_sip must start with sip:")
        return self


class ImapSettings(_Frozen):
    host: str | None = None
    port: int = Field(993, ge=1, le=65535)
    use_ssl: bool = True
    username: str | None = None
    password: str | None = None
    folder: str = "INBOX"
    processed_folder: str | None = None
    poll_interval_seconds: float = Field(60, ge=1, le=86400)

    @model_validator(mode="after")
    def _login(self) -> ImapSettings:
        if self.host and not (self.username and self.password):
            raise ValueError("host is set: username and password are needed (HOTLINE_IMAP_USERNAME/PASSWORD)")
        return self


class EmailAckSettings(_Frozen):
    enabled: bool = False
    from_address: str = "help@example.org"
    text: str = Field("", max_length=1000)


class SmtpSettings(_Frozen):
    host: str | None = None
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    username: str | None = None
    password: str | None = None


class EmailSettings(_Frozen):
    inbound_secret: str | None = None
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    max_attachment_bytes: int = Field(5 * 1024 * 1024, ge=0)
    max_attachments: int = Field(20, ge=0, le=1000)
    imap: ImapSettings = ImapSettings()
    ack: EmailAckSettings = EmailAckSettings()
    smtp: SmtpSettings = SmtpSettings()


class WebformSettings(_Frozen):
    exit_url: str = "https://www.weather.gov"
    rate_limit: str = "10 per minute;60 per hour"
    trusted_proxies: int = Field(0, ge=0, le=10)
    max_request_bytes: int = Field(262144, ge=4096, le=10_000_000)

    @field_validator("exit_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https://\S+$", v):
            raise ValueError("must be an https:// URL")
        return v


class ConsoleSettings(_Frozen):
    session_minutes: int = Field(480, ge=5, le=1440)
    idle_minutes: int = Field(30, ge=1, le=1440)
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    lockout_attempts: int = Field(5, ge=1, le=100)
    lockout_minutes: int = Field(15, ge=1, le=1440)
    refresh_seconds: int = Field(15, ge=2, le=600)
    amber_fraction: float = Field(0.25, gt=0, lt=1)
    min_password_length: int = Field(12, ge=8, le=128)


class StatsSettings(_Frozen):
    suppression_threshold: int = Field(10, ge=2, le=1000)
    public: bool = True


class QueueSettings(_Frozen):
    name: str = "hotline-triage"
    worker_class: Literal["simple", "fork"] = "simple"
    job_timeout: int = Field(60, ge=1)
    retry_intervals: tuple[int, ...] = (2, 10, 60, 300)
    failure_ttl_days: int = Field(30, ge=1)


class SweeperSettings(_Frozen):
    interval_seconds: float = Field(5, gt=0)
    grace_seconds: float = Field(10, ge=0)
    worker_heartbeat_ttl_seconds: int = Field(10, ge=2)


class TriageSettings(_Frozen):
    rules_dir: str | None = None


class RouteRule(_Frozen):
    category: str
    urgency: str
    channel: str | None = None
    queue: str
    minutes: int | None = Field(None, gt=0)
    business_days: int | None = Field(None, gt=0, le=30)

    @field_validator("category")
    @classmethod
    def _category(cls, v: str) -> str:
        if v != "*" and v not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; expected one of {', '.join(CATEGORIES)} or '*'")
        return v

    @field_validator("urgency")
    @classmethod
    def _urgency(cls, v: str) -> str:
        if v != "*" and v not in URGENCIES:
            raise ValueError(f"unknown urgency {v!r}; expected one of {', '.join(URGENCIES)} or '*'")
        return v

    @field_validator("channel")
    @classmethod
    def _channel(cls, v: str | None) -> str | None:
        if v is not None and v not in CHANNELS:
            raise ValueError(f"unknown channel {v!r}; expected one of {', '.join(CHANNELS)}")
        return v

    @model_validator(mode="after")
    def _one_clock(self) -> RouteRule:
        if (self.minutes is None) == (self.business_days is None):
            raise ValueError("give exactly one of 'minutes' (wall clock) or 'business_days'")
        return self


class SlaSettings(_Frozen):
    timezone: str = "America/New_York"
    holidays_country: str = "US"
    workday_start: str = "09:00"
    workday_end: str = "17:00"
    routes: tuple[RouteRule, ...]

    @field_validator("workday_start", "workday_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", v):
            raise ValueError("must be HH:MM (24-hour)")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return _time_zone(v)

    @model_validator(mode="after")
    def _covers_everything(self) -> SlaSettings:
        if self.workday_start >= self.workday_end:
            raise ValueError("workday_start must be before workday_end")
        for cat in CATEGORIES:
            for urg in URGENCIES:
                if not any(r.category in ("*", cat) and r.urgency in ("*", urg) and r.channel is None
                           for r in self.routes):
                    raise ValueError(f"routes: no entry covers category={cat} urgency={urg} "
                                     "on every channel; add a catch-all entry")
        return self


class EscalationSettings(_Frozen):
    crisis_unacknowledged_minutes: float = Field(3, gt=0, le=1440)
    acknowledge_urgencies: tuple[str, ...] = ("immediate",)
    warning_fraction: float = Field(0.75, gt=0, lt=1)
    breach_queue: str = "supervisors"

    @field_validator("acknowledge_urgencies")
    @classmethod
    def _urgencies(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for u in v:
            if u not in URGENCIES:
                raise ValueError(f"unknown urgency {u!r}; expected one of {', '.join(URGENCIES)}")
        return v


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class NotificationSettings(_Frozen):
    on_call_sms: tuple[str, ...] = ()
    on_call_voice: tuple[str, ...] = ()
    from_number: str | None = None
    webhook_urls: tuple[str, ...] = ()
    webhook_secret: str | None = None
    webhook_timeout_seconds: float = Field(5, gt=0, le=60)

    @field_validator("on_call_sms", "on_call_voice")
    @classmethod
    def _numbers(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for n in v:
            if not _E164.match(n):
                raise ValueError(f"{n!r} is not an E.164 number like +15555550100")
        return v

    @field_validator("webhook_urls")
    @classmethod
    def _urls(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for u in v:
            if not re.match(r"^https?://\S+$", u):
                raise ValueError(f"{u!r} is not an http(s) URL")
        return v

    @model_validator(mode="after")
    def _secret_with_urls(self) -> NotificationSettings:
        if self.webhook_urls and not self.webhook_secret:
            raise ValueError("webhook_urls need webhook_secret (HOTLINE_WEBHOOK_SECRET) to sign with")
        return self


class EventSettings(_Frozen):
    exchange: str = Field("hotline.routes", min_length=1)
    publish_interval_seconds: float = Field(1, gt=0, le=60)


class ProtocolSettings(_Frozen):
    path: str | None = None


class RetentionSettings(_Frozen):
    closed_case_days: int = Field(730, ge=1, le=36500)
    unrouted_signal_days: int = Field(90, ge=1, le=36500)
    notification_days: int = Field(90, ge=1, le=36500)
    audit_days: int = Field(2190, ge=1, le=36500)


class Settings(_Frozen):
    """Everything tunable, frozen. Built by load_settings(); pass sections where needed."""

    service: ServiceSettings = ServiceSettings()
    storage: StorageSettings = StorageSettings()
    security: SecuritySettings = SecuritySettings()
    twilio: TwilioSettings = TwilioSettings()
    sms: SmsSettings
    voice: VoiceSettings
    email: EmailSettings = EmailSettings()
    webform: WebformSettings = WebformSettings()
    console: ConsoleSettings = ConsoleSettings()
    stats: StatsSettings = StatsSettings()
    queue: QueueSettings = QueueSettings()
    sweeper: SweeperSettings = SweeperSettings()
    triage: TriageSettings = TriageSettings()
    escalation: EscalationSettings = EscalationSettings()
    notifications: NotificationSettings = NotificationSettings()
    events: EventSettings = EventSettings()
    protocols: ProtocolSettings = ProtocolSettings()
    retention: RetentionSettings = RetentionSettings()
    sla: SlaSettings
    teams: dict[str, str]
    source: str = "<defaults>"

    @model_validator(mode="after")
    def _queues_exist(self) -> Settings:
        for i, rule in enumerate(self.sla.routes):
            if rule.queue not in self.teams:
                raise ValueError(f"sla.routes.{i}.queue: {rule.queue!r} is not a team under 'teams'")
        if self.escalation.breach_queue not in self.teams:
            raise ValueError(f"escalation.breach_queue: {self.escalation.breach_queue!r} is not a team under 'teams'")
        return self

    @property
    def var_path(self) -> Path:
        return Path(self.service.var_dir)

    def database_url(self) -> str:
        if self.storage.database_url:
            return self.storage.database_url
        return f"sqlite:///{(self.var_path / 'hotline.db').resolve()}"


def default_config_path() -> Path:
    """The config.yaml next to the code (a checkout), else in the current directory."""
    here = Path(__file__).resolve().parent.parent / "config.yaml"
    return here if here.exists() else Path("config.yaml")


def _format_loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for var, (section, key) in ENV_OVERRIDES.items():
        value = env.get(var)
        if value is None or value == "":
            continue
        sect = merged.setdefault(section, {})
        if not isinstance(sect, dict):
            raise ConfigError(f"{section}: must be a mapping to apply {var}")
        sect[key] = value
    for var, (section, sub, key) in ENV_NESTED.items():
        value = env.get(var)
        if value:
            sect = merged.setdefault(section, {})
            if isinstance(sect, dict):
                subsect = sect.get(sub) if isinstance(sect.get(sub), dict) else {}
                sect[sub] = {**subsect, key: value}
    return merged


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file and the environment once; raise ConfigError naming file and key."""
    env = os.environ if env is None else env
    cfg_path = Path(path or env.get("HOTLINE_CONFIG") or default_config_path())
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{cfg_path}: configuration file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg_path}: cannot read configuration file ({exc.__class__.__name__})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{cfg_path}:{where}: {problem}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{cfg_path}: top level must be a mapping of sections")
    try:
        merged = _apply_env(data, env)
    except ConfigError as exc:
        raise ConfigError(f"{cfg_path}: {exc}") from exc
    merged["source"] = str(cfg_path)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = _format_loc(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling against config.yaml's documented keys)"
        more = len(exc.errors()) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        env_hint = ""
        for var, (section, key) in ENV_OVERRIDES.items():
            if loc == f"{section}.{key}" and env.get(var):
                env_hint = f" [value from {var}]"
        where = "" if loc == "(top level)" else f"{loc}: "
        raise ConfigError(f"{cfg_path}: {where}{msg}{env_hint}{extra}") from exc
