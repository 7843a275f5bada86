"""One typed settings object, read from ``MIDISCRIBE_*`` environment variables and an
optional TOML file named by ``MIDISCRIBE_CONFIG``; validated at start, passed in."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

# Standard Webhooks' suggested retry schedule: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_WEBHOOK_SCHEDULE_S = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


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
    rate_limit_per_minute: int = Field(default=120, ge=1)

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

    lease_s: float = Field(default=60.0, gt=0, description="how long a worker holds a task without renewing")
    poll_interval_s: float = Field(default=0.5, gt=0)
    max_task_attempts: int = Field(default=3, ge=1, description="worker deaths before a task is failed")
    soundfont: str | None = None

    @field_validator("fetch_allow_networks", "webhook_schedule_s", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip().startswith("["):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

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
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'midiscribe.db').resolve()}"

    @property
    def base_url(self) -> str:
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

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
        if "@" in self.database_url:
            scheme, rest = self.database_url.split("://", 1)
            out["database_url"] = f"{scheme}://********@{rest.split('@', 1)[1]}"
        out["effective_database_url"] = "(see database_url)" if self.database_url else self.db_url
        return out
