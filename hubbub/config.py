"""Every setting of hubbub, read from ``HUBBUB_*`` environment variables.

Nothing else in the package reads the environment. An invalid value stops
start-up with :class:`ConfigError`, whose message names the variable and the
expected form. The table in the README lists the same fields.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ConfigError", "Settings", "load_settings"]

ENV_PREFIX = "HUBBUB_"

CommaList = Annotated[tuple[str, ...], NoDecode]
#: A rate limit, ``<count>/<second|minute|hour|day>`` (``hubbub.ratelimit.Limit``).
RateText = Annotated[str, Field(pattern=r"^\s*[1-9]\d*\s*/\s*(second|minute|hour|day)\s*$")]


class ConfigError(Exception):
    """A setting is invalid; the message names each bad variable."""


class Settings(BaseSettings):
    """hubbub's configuration. Field ``x`` is read from ``HUBBUB_X``."""

    # An empty variable (``HUBBUB_SMTP_URL=`` in a compose file) means "not set".
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", env_ignore_empty=True
    )

    host: str = Field("127.0.0.1", description="Address the gateway listens on.")
    port: int = Field(8000, ge=0, le=65535, description="Port the gateway listens on.")
    data_dir: Path = Field(
        Path(".hubbub"), description="Where the embedded Postgres and Redis keep their data."
    )
    database_url: str | None = Field(
        None, description="postgresql:// URL of an external Postgres; unset: embedded."
    )
    redis_url: str | None = Field(
        None, description="redis:// URL of an external Redis; unset: embedded."
    )
    ray_address: str | None = Field(
        None, description="Address of a Ray cluster to join (host:port); unset: local Ray."
    )
    ray_namespace: str = Field(
        "hubbub", pattern=r"^[A-Za-z0-9_.-]+$", description="Ray namespace of the shards."
    )
    shards: int = Field(2, ge=1, le=1024, description="Shard actors per entity kind.")
    db_pool_size: int = Field(10, ge=1, le=500, description="Postgres connections per process.")
    app_role: str = Field(
        "hubbub_app",
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Postgres role the application runs as; row-level security applies to it.",
    )
    entity_idle_seconds: float = Field(
        300.0, gt=0, description="An entity idle this long is passivated (dropped from memory)."
    )
    router_batch_size: int = Field(
        256, ge=1, le=100_000, description="Commands coalesced into one shard call at most."
    )
    router_flush_ms: float = Field(
        1.0, ge=0, le=1000, description="How long the router waits to fill a batch."
    )
    router_calls_in_flight: int = Field(
        1,
        ge=1,
        le=64,
        description="Shard calls one gateway keeps in flight per shard; the next batch "
        "grows while they are out.",
    )
    command_timeout_seconds: float = Field(
        10.0, gt=0, description="Deadline of one command through the router."
    )
    idempotency_window_hours: float = Field(
        24.0, ge=1, description="How long a command's idempotency key is remembered."
    )
    access_token_minutes: float = Field(
        15.0, gt=0, le=1440, description="Lifetime of an access token (JWT)."
    )
    refresh_token_days: float = Field(
        30.0, gt=0, le=365, description="A session unused for this long can no longer refresh."
    )
    two_factor_key: SecretStr | None = Field(
        None,
        min_length=32,
        description="At least 32 random characters: TOTP secrets are stored encrypted under "
        "a key derived from it, and export links signed with another; unset: stored plainly, "
        "links signed with a key kept in the export directory. The same on every gateway.",
    )
    public_url: str = Field(
        default_factory=lambda data: _gateway_url(data["host"], data["port"]),
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="Base URL of the links in mails (email verification, password reset).",
    )
    smtp_url: str | None = Field(
        None,
        pattern=r"^smtps?://",
        description="smtp:// (STARTTLS when offered) or smtps:// URL of the mail server, "
        "with user:password if it needs them; unset: mails are written to the log.",
    )
    mail_from: str = Field(
        "hubbub <no-reply@localhost>", min_length=3, description="From: of every mail."
    )
    mail_max_attempts: int = Field(
        8, ge=1, le=100, description="Delivery attempts of one mail before it is given up."
    )
    mail_poll_seconds: float = Field(
        5.0, gt=0, le=3600, description="How often a gateway looks for mails to send."
    )
    email_token_hours: float = Field(
        48.0, gt=0, le=720, description="Lifetime of an email verification link."
    )
    reset_token_minutes: float = Field(
        60.0, gt=0, le=1440, description="Lifetime of a password reset link."
    )
    login_limit_per_ip: RateText = Field("30/minute", description="Logins from one address.")
    login_limit_per_account: RateText = Field(
        "5/minute", description="Logins to one account (by email)."
    )
    login_lockout_failures: int = Field(
        10, ge=1, le=1000, description="Consecutive failed logins that lock an account."
    )
    login_lockout_minutes: float = Field(
        15.0, gt=0, le=1440, description="How long a locked account stays locked."
    )
    email_send_limit: RateText = Field(
        "1/minute", description="Verification mails one account may ask for."
    )
    password_forgot_limit_per_email: RateText = Field(
        "3/hour", description="Reset mails asked for one email address."
    )
    password_forgot_limit_per_ip: RateText = Field(
        "10/hour", description="Reset mails asked for from one address."
    )
    register_limit_per_ip: RateText = Field(
        "10/hour", description="Registrations (sync and async signups) from one address."
    )
    register_limit_global: RateText = Field(
        "300/hour", description="Registrations (sync and async signups) on the whole deployment."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest HTTP request body accepted."
    )
    http_idle_seconds: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="An HTTP connection is closed this long after it opened or after its last "
        "answer unless a whole new request (its headers) has arrived: bounds idle keep-alive "
        "connections and clients that trickle their headers.",
    )
    socket_connect_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="An Engine.IO session that has not sent its Socket.IO CONNECT within this "
        "long is closed.",
    )
    socket_buffer_bytes: int = Field(
        4_194_304,
        ge=65_536,
        description="Unsent bytes a socket may fall behind before it is disconnected.",
    )
    cors_origins: CommaList = Field(
        (), description="Comma-separated origins allowed by CORS; '*' for any."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level."
    )
    log_format: Literal["json", "console"] = Field("json", description="Log line format.")
    plugins: CommaList = Field(
        (), description="Comma-separated modules that add entity kinds, routes and events."
    )
    signup_policy: Literal["open", "invite_only", "approval"] = Field(
        "open",
        description="Who may register: anyone (open), only through an invite (invite_only), "
        "or after staff approve a signup request (approval).",
    )
    plans: str | None = Field(
        None,
        description="JSON object {plan: {features, limits, buckets}}; unset: free/pro/business "
        "as in hubbub/tenancy/plans.py. The first plan is the one new tenants get.",
    )
    invite_days: float = Field(7.0, gt=0, le=90, description="Lifetime of a tenant invite.")
    auth_retention_days: float = Field(
        90.0,
        ge=1,
        le=3650,
        description="How long sessions, refresh tokens, mail tokens, mails and async signups "
        "are kept after they ended (expired, revoked, used, sent or filed).",
    )
    signup_stream_minutes: float = Field(
        60.0, gt=0, le=1440, description="Lifetime of the stream link of an async signup."
    )
    tenant_deletion_grace_days: float = Field(
        30.0, ge=0, le=365, description="How long a deleted tenant can still be restored."
    )
    tenant_purge_interval_seconds: float = Field(
        3600.0,
        gt=0,
        le=86400,
        description="How often a gateway looks for deleted tenants whose grace period ended.",
    )
    message_max_bytes: int = Field(
        16_384, ge=1, le=1_048_576, description="Largest message body, in UTF-8 bytes."
    )
    message_limit_per_socket: RateText = Field(
        "20/second",
        description="Messages one socket may send (a burst of the count, then evenly over "
        "the period); past it a send is acked rate_limited.",
    )
    message_limit_per_user: RateText = Field(
        "600/minute",
        description="Messages one user may send over every socket and HTTP, on every "
        "gateway together; past it a send answers rate_limited.",
    )
    snooze_sweep_seconds: float = Field(
        5.0,
        gt=0,
        le=3600,
        description="How often a gateway wakes snoozed support conversations whose time came.",
    )
    typing_ttl_seconds: float = Field(
        6.0,
        gt=0,
        le=60,
        description="A typing indicator not refreshed for this long ends with a 'stop'.",
    )
    typing_relay_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="Least time between two relayed typing 'start's of one socket in one "
        "conversation; starts in between only keep the indicator alive.",
    )
    presence_heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="How often a gateway renews its presence lease, reports activity and "
        "sweeps dead gateways and idle users.",
    )
    presence_lease_seconds: float = Field(
        20.0,
        gt=0,
        le=600,
        description="A gateway that has not renewed its lease for this long is dead: its "
        "users' devices are dropped from presence. Keep it above the heartbeat.",
    )
    presence_idle_seconds: float = Field(
        300.0, gt=0, description="A user online without any socket activity this long is away."
    )
    job_report_seconds: float = Field(
        0.1,
        gt=0,
        le=60,
        description="A running job's reports (progress, steps, logs, output) leave its "
        "worker in one batch at most this often.",
    )
    job_check_seconds: float = Field(
        1.0,
        gt=0,
        le=600,
        description="A running job that reports nothing still asks its job this often "
        "whether it was cancelled.",
    )
    job_sweep_seconds: float = Field(
        0.5,
        gt=0,
        le=60,
        description="How often the job sweep launches due jobs, supervises running ones "
        "and fires schedules (one gateway at a time; a submit also starts a round).",
    )
    job_launch_backlog: int = Field(
        256,
        ge=1,
        le=100_000,
        description="Most jobs handed to Ray and not started yet, across the deployment; "
        "the others wait in Postgres, where tenants take turns.",
    )
    job_cancel_grace_seconds: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="A running job asked to stop that has not within this time is "
        "cancelled and its worker killed.",
    )
    broadcast_batch_size: int = Field(
        100,
        ge=1,
        le=1000,
        description="Recipients a broadcast sends to at once (one round of conversation "
        "commands, then one Postgres write of their statuses).",
    )
    export_dir: Path = Field(
        default_factory=lambda data: Path(data["data_dir"]) / "exports",
        validate_default=True,
        description="Where conversation exports are written and served from; unset: "
        "<data dir>/exports. Gateways and job workers must share it.",
    )
    export_link_hours: float = Field(
        24.0, gt=0, le=720, description="Lifetime of an export's signed download link."
    )
    sse_heartbeat_seconds: float = Field(
        15.0, gt=0, le=300, description="Heartbeat comment interval of SSE streams."
    )
    agent_provider: Literal["local", "openai"] = Field(
        "local",
        description="Who writes the assistant's replies: `local` (deterministic, no network) "
        "or `openai` (an OpenAI-compatible chat completions API).",
    )
    agent_base_url: str = Field(
        "https://api.openai.com/v1",
        pattern=r"^https?://",
        description="Base URL of the OpenAI-compatible API (`/chat/completions` below it).",
    )
    agent_api_key: SecretStr | None = Field(
        None, description="Bearer key of the OpenAI-compatible API; unset: none is sent."
    )
    agent_model: str = Field(
        "gpt-4o-mini", min_length=1, description="Model named in each chat completions request."
    )
    agent_history_messages: int = Field(
        20, ge=1, le=500, description="Latest messages of a conversation sent to the model."
    )
    agent_provider_timeout_seconds: float = Field(
        60.0, gt=0, le=3600, description="Deadline of one provider request (and between tokens)."
    )
    agent_local_token_ms: float = Field(
        15.0, ge=0, le=10_000, description="Pause of the local provider before each token."
    )
    agent_wait_seconds: float = Field(
        60.0,
        ge=0,
        le=600,
        description="How long POST /chat waits for the reply before answering 202 with the job.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token `/metrics` requires; unset: `/metrics` answers loopback "
        "clients only.",
    )
    gateway_id: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}",
        description="Name of this gateway in logs and health reports.",
    )

    @field_validator("cors_origins", "plugins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("export_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Settings travel to Ray workers, whose working directory is not the gateway's.
        return value.resolve()

    @property
    def embedded(self) -> bool:
        """True when hubbub starts its own Postgres and Redis."""
        return self.database_url is None or self.redis_url is None


def _gateway_url(host: str, port: int) -> str:
    """The URL this gateway answers on, as a browser on this machine reaches it."""
    if host in ("", "0.0.0.0", "::"):  # every interface: loopback is one of them
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; ``overrides`` win (used by the CLI)."""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = ["invalid configuration:"]
    for error in exc.errors():
        if error["type"] == "default_factory_not_called":
            continue  # a default derived from a value reported on its own line
        field = str(error["loc"][0]) if error["loc"] else "?"
        lines.append(f"  {ENV_PREFIX}{field.upper()}: {error['msg']} (got {error.get('input')!r})")
    return "\n".join(lines)
