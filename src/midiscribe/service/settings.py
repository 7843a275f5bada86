"""One typed settings object, read from ``MIDISCRIBE_*`` environment variables and an
optional TOML file named by ``MIDISCRIBE_CONFIG``; validated at start, passed in."""

from __future__ import annotations

import importlib.util
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# Standard Webhooks' suggested retry schedule: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_WEBHOOK_SCHEDULE_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
_BROKER_SCHEMES = frozenset({"redis", "rediss", "amqp", "amqps", "pyamqp", "sqs", "memory"})  # distributed


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MIDISCRIBE_", extra="ignore")

    data_dir: Path = Field(default=Path("midiscribe-data"), description="task records, uploads and results")
    database_url: str = Field(default="", description="SQLAlchemy URL; default: SQLite in data_dir")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=0, le=64, description="embedded worker processes")
    public_base_url: str = Field(default="", description="base of result links, e.g. https://midi.example.com")
    signing_secret: SecretStr | None = Field(
        default=None, description="HMAC key for result links; default: kept in data_dir"
    )
    dev_mode: bool = Field(default=False, description="development setting: allows the key-less web page")

    link_ttl_s: int = Field(default=7 * 24 * 3600, ge=60)
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    max_audio_duration_s: float = Field(default=2 * 3600.0, gt=0)
    max_concurrent_tasks_per_key: int = Field(default=20, ge=1)
    rate_limit_per_minute: int = Field(default=120, ge=1, description="submissions per key in any 60 s")
    rate_limit_storage: Literal["auto", "redis", "database", "memory"] = Field(
        default="auto", description="where the counters live; auto: Redis when the broker is, else the database"
    )
    rate_limit_redis_url: str = Field(default="", description="Redis for the counters; default: the broker's")

    fetch_allow_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="CIDRs/hosts allowed despite being private"
    )
    fetch_connect_timeout_s: float = 10.0
    fetch_read_timeout_s: float = 30.0
    fetch_total_timeout_s: float = 600.0
    fetch_max_redirects: int = 5

    webhook_schedule_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_WEBHOOK_SCHEDULE_S)
    )
    webhook_timeout_s: float = 15.0
    webhook_jitter: float = Field(default=0.2, ge=0, le=1)
    # Delivery concurrency (README, "Webhooks"; issue 12): one slow endpoint holds only its own slots.
    webhook_concurrency: int = Field(default=32, ge=1, le=512, description="webhooks in flight per process")
    webhook_concurrency_per_endpoint: int = Field(
        default=8, ge=1, description="webhooks in flight to one endpoint (scheme, host, port) per process"
    )
    webhook_lease_s: float = Field(
        default=10.0, ge=1, description="an attempt's hold, renewed while it is out: re-sent this soon after a crash"
    )

    lease_s: float = Field(default=60.0, gt=0, description="how long a worker holds a task without renewing")
    poll_interval_s: float = Field(default=0.5, gt=0)
    max_task_attempts: int = Field(default=3, ge=1, description="worker deaths before a task is failed")
    soundfont: str | None = None

    # --- hardening --- (README, "Errors", "Quotas", "Retention"; issue 11)
    work_dir: Path | None = Field(
        default=None, description="working files (uploads in flight, task inputs); default: data_dir/work"
    )
    database_busy_timeout_s: float = Field(
        default=2.0, gt=0, le=60, description="how long a request waits for a locked database before 503"
    )
    max_audio_seconds_per_day: float | None = Field(
        default=None, gt=0, description="default daily quota of audio seconds per key (a key's own setting wins)"
    )
    result_ttl_days: float = Field(default=30, ge=0, description="days results and uploads are kept; 0: forever")
    retention_interval_s: float = Field(default=3600.0, gt=0, description="how often expired files are deleted")
    idempotency_ttl_s: float = Field(default=24 * 3600.0, gt=0, description="how long an Idempotency-Key is kept")
    # --- end hardening ---

    # --- distributed --- (README, "Scaling out"). Empty broker_url: embedded workers poll the database.
    broker_url: str = Field(default="", description="Celery broker: redis://, amqp://, sqs://; empty: embedded")
    queue_prefix: str = Field(default="midiscribe", pattern=r"^[A-Za-z0-9_.-]+$", description="<prefix>.default")
    long_audio_s: float = Field(default=600.0, gt=0, description="longer inputs go to the <prefix>.long queue")
    task_time_base_s: float = Field(default=300.0, gt=0, description="time limit: base + per_audio * duration")
    task_time_per_audio_s: float = Field(default=1.0, gt=0, description="seconds of work allowed per audio second")
    visibility_timeout_s: float | None = Field(default=None, gt=0, description="default: 2x the longest limit")
    sweep_interval_s: float = Field(default=15.0, gt=0, description="how often API nodes look for lost tasks")
    redispatch_after_s: float = Field(default=60.0, gt=0, description="re-publish a task unclaimed this long")
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=9108, ge=0, le=65535, description="`midiscribe worker`; 0: off")
    log_format: Literal["text", "json"] = "text"
    # Inference backend and precision of the workers (issue 13; core/backends.py decides "auto").
    backend: Literal["auto", "onnxruntime", "openvino"] = Field(default="auto", description="inference backend")
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(default="auto", description="inference precision")

    @model_validator(mode="after")
    def _check_distributed(self) -> Settings:
        if self.broker_url and self.broker_url.split("://", 1)[0] not in _BROKER_SCHEMES:
            raise ValueError(f"MIDISCRIBE_BROKER_URL must start with one of {', '.join(sorted(_BROKER_SCHEMES))}")
        if self.rate_limit_storage == "redis" and not self.rate_limit_redis:
            raise ValueError(
                "MIDISCRIBE_RATE_LIMIT_STORAGE=redis needs a redis broker or MIDISCRIBE_RATE_LIMIT_REDIS_URL"
            )
        if self.visibility_timeout_s is not None and self.visibility_timeout_s <= self.longest_task_s:
            raise ValueError(
                f"MIDISCRIBE_VISIBILITY_TIMEOUT_S must exceed the longest task's limit ({self.longest_task_s:.0f} s)"
            )
        return self

    @property
    def distributed(self) -> bool:
        return bool(self.broker_url)

    @property
    def rate_limit_redis(self) -> str:
        """The Redis URL for rate-limit counters, or "" when there is none."""
        if self.rate_limit_redis_url:
            return self.rate_limit_redis_url
        return self.broker_url if self.broker_url.startswith(("redis://", "rediss://")) else ""

    @property
    def rate_limit_backend(self) -> Literal["redis", "database", "memory"]:
        """Where rate-limit counters live (README, "Rate limits"; issue 12)."""
        if self.rate_limit_storage == "auto":
            return "redis" if self.rate_limit_redis else "database"
        return self.rate_limit_storage

    def task_time_limit_s(self, audio_s: float | None) -> float:
        """Wall-clock limit of one run of a task; unknown durations get the longest allowed."""
        duration = self.max_audio_duration_s if audio_s is None else min(audio_s, self.max_audio_duration_s)
        return self.task_time_base_s + self.task_time_per_audio_s * duration

    def hard_time_limit_s(self, audio_s: float | None) -> float:
        """The broker-side backstop: the run's limit plus the download and two leases."""
        return self.task_time_limit_s(audio_s) + self.fetch_total_timeout_s + 2 * self.lease_s

    @property
    def longest_task_s(self) -> float:
        return self.hard_time_limit_s(None)

    @property
    def effective_visibility_timeout_s(self) -> float:
        return self.visibility_timeout_s or 2 * self.longest_task_s

    def queue_for(self, audio_s: float | None) -> str:
        """Long inputs get their own queue so they don't hold up short ones; unknown ones go to default."""
        kind = "long" if audio_s is not None and audio_s > self.long_audio_s else "default"
        return f"{self.queue_prefix}.{kind}"

    # --- end distributed ---

    # --- faults --- (README, "What survives what"; issue 12)
    transient_retry_s: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: [1.0, 2.0, 5.0, 10.0, 20.0, 30.0],
        description="waits between retries of a store, database or network call inside a task",
    )
    worker_heartbeat_s: float = Field(default=10.0, gt=0, description="how often a worker records that it lives")
    worker_deaf_after_s: float = Field(
        default=30.0, gt=0, description="a worker with free slots and work waiting that gets none this long restarts"
    )

    @field_validator("transient_retry_s", mode="before")
    @classmethod
    def _split_delays(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [float(v) for v in value.split(",") if v.strip()]
        return value

    @property
    def worker_stale_after_s(self) -> float:
        """A worker whose heartbeat is older than this is gone (missed three beats)."""
        return 3 * self.worker_heartbeat_s + 5

    # --- end faults ---

    # --- S3 --- (README, "S3 and S3-compatible stores"). Credentials come from the standard AWS chain.
    store: Literal["local", "s3"] = Field(default="local", description="where uploads and results live")
    s3_bucket: str = Field(default="", description="bucket for uploads and results when store is s3")
    s3_prefix: str = Field(default="AudioToMidi", description="results land at <prefix>/<task_id>.<ext>")
    s3_inputs: bool | None = Field(default=None, description="accept s3:// inputs; default: when store is s3")
    s3_input_buckets: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="buckets s3:// inputs may name; empty: any the credentials can read"
    )
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint (MinIO, Ceph, R2); empty: AWS")
    s3_region: str = Field(default="", description="empty: from the AWS chain (AWS_REGION, profile)")
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    s3_url_mode: Literal["presigned", "public"] = Field(default="presigned", description="result links")
    s3_public_base_url: str = Field(default="", description="with url_mode public: <base>/<prefix>/<task_id>.mid")
    s3_presign_ttl_s: int = Field(default=7 * 24 * 3600, ge=60, le=7 * 24 * 3600, description="SigV4's maximum")

    @field_validator("fetch_allow_networks", "webhook_schedule_s", "s3_input_buckets", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("s3_prefix")
    @classmethod
    def _strip_prefix(cls, value: str) -> str:
        return value.strip("/")

    @model_validator(mode="after")
    def _check_s3(self) -> Settings:
        if self.store == "s3" and not self.s3_bucket:
            raise ValueError("MIDISCRIBE_S3_BUCKET is required when MIDISCRIBE_STORE=s3")
        if self.store == "s3" and self.s3_url_mode == "public" and not self.s3_public_base_url:
            raise ValueError("MIDISCRIBE_S3_PUBLIC_BASE_URL is required when MIDISCRIBE_S3_URL_MODE=public")
        if (self.store == "s3" or self.s3_inputs_enabled) and importlib.util.find_spec("boto3") is None:
            raise ValueError("S3 support needs boto3: pip install 'midiscribe[s3]'")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = os.environ.get("MIDISCRIBE_CONFIG")
        if config:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config)))
        return tuple(sources)

    # derived values -------------------------------------------------------------
    @property
    def s3_inputs_enabled(self) -> bool:
        """s3:// inputs are read when asked for, or by default when results go to S3 too."""
        return self.store == "s3" if self.s3_inputs is None else self.s3_inputs

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'midiscribe.db').resolve()}"

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    @property
    def work_path(self) -> Path:
        """Where working files go: ``work_dir``, or ``data_dir/work`` (never the system temp dir)."""
        return self.work_dir or self.data_dir / "work"

    def link_secret(self) -> bytes:
        """The result-link HMAC key: the setting, or one generated once and kept in data_dir."""
        if self.signing_secret is not None:
            return self.signing_secret.get_secret_value().encode()
        path = self.data_dir / "link-secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(32))
        return path.read_text().strip().encode()

    def masked(self) -> dict[str, Any]:
        """Effective settings for display, secrets masked."""
        out = self.model_dump(mode="json")
        out["signing_secret"] = "********" if self.signing_secret else None
        for name in ("database_url", "broker_url"):
            url = getattr(self, name)
            if "@" in url:
                scheme, rest = url.split("://", 1)
                out[name] = f"{scheme}://********@{rest.split('@', 1)[1]}"
        out["effective_database_url"] = "(see database_url)" if self.database_url else self.db_url
        return out
