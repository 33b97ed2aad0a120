"""The one settings object of the gateway, composed of each domain's own section (``gateway/<domain>/settings.py``).

Read from the environment (``SOHOGW_*``, nested with ``__``) and from a TOML file named by ``SOHOGW_CONFIG``; the
environment wins. Every field is documented in docs/settings.md. An invalid value stops start-up with a message
that names the setting and what is wrong, and never echoes the value (it may be a secret).
"""

import os
import stat
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from gateway.directory.settings import DirectorySettings
from gateway.enrollment.settings import EnrollmentSettings
from gateway.nodes.settings import ClusterSettings
from gateway.notify.sms import SmsSettings
from gateway.pki.settings import CaSettings
from gateway.seats.settings import SeatSettings
from gateway.sessions.settings import PortalSettings
from gateway.supervision.settings import SupervisionSettings
from gateway.voice.settings import VoiceSettings
from gateway.vpn.settings import VpnSettings

ENV_PREFIX = "SOHOGW_"
CONFIG_ENV = "SOHOGW_CONFIG"


class SettingsError(Exception):
    """A setting is invalid; the message names it and says what is wrong."""


class Settings(BaseSettings):
    """Everything an operator can set. Defaults are the embedded single-node gateway."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data_dir: Path = Path("./data")
    """SQLite database, CA files and seat homes live here unless set otherwise."""
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/sohogw.db``. PostgreSQL: ``postgresql+psycopg://…``."""
    public_url: str = "http://127.0.0.1:8080"
    """How agents reach the portal; CRL and OCSP URLs in certificates are built from it."""
    listen_host: str = "127.0.0.1"
    listen_port: Annotated[int, Field(ge=1, le=65535)] = 8080
    node_name: str = Field(default_factory=lambda: os.uname().nodename)
    """Names this node when several share one PostgreSQL."""
    log_level: str = "INFO"
    cluster: ClusterSettings = ClusterSettings()
    ca: CaSettings = CaSettings()
    portal: PortalSettings = PortalSettings()
    enrollment: EnrollmentSettings = EnrollmentSettings()
    seats: SeatSettings = SeatSettings()
    supervision: SupervisionSettings = SupervisionSettings()
    voice: VoiceSettings = VoiceSettings()
    vpn: VpnSettings = VpnSettings()
    sms: SmsSettings = SmsSettings()
    directory: DirectorySettings | None = None
    """Default: the built-in directory in ``<data_dir>/directory.json``."""

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, level: str) -> str:
        level = level.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite:///", "postgresql+psycopg://", "postgresql://")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        if url is not None and url.startswith("postgresql://"):
            return "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _derived_paths(self) -> "Settings":
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'sohogw.db'}"
        if self.ca.directory is None:
            self.ca.directory = self.data_dir / "ca"
        if self.directory is None:
            self.directory = DirectorySettings(kind="builtin", builtin_file=self.data_dir / "directory.json")
        if self.voice.call_state_dir is None:
            self.voice.call_state_dir = self.data_dir / "call-state"
        recording = self.seats.recording
        if recording.sealed_dir is None:
            recording.sealed_dir = self.data_dir / "recordings-sealed"
        if recording.key_file is None:
            recording.key_file = self.data_dir / "recordings.key"
        return self

    @property
    def directory_settings(self) -> DirectorySettings:
        assert self.directory is not None  # set by _derived_paths
        return self.directory

    @property
    def ca_directory(self) -> Path:
        return self.ca.resolved_directory

    @property
    def db_url(self) -> str:
        assert self.database_url is not None  # set by _derived_paths
        return self.database_url

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
        config_file = os.environ.get(CONFIG_ENV)
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def _describe(error: ValidationError) -> str:
    """One line per problem, naming the environment variable and the TOML key; the value itself is never shown."""
    lines = []
    for problem in error.errors(include_input=False, include_url=False):
        path = [str(part) for part in problem["loc"]]
        toml_key = ".".join(path)
        env_name = ENV_PREFIX + "__".join(path).upper()
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"setting {toml_key} ({env_name}): {message}")
    return "\n".join(lines)


def _secret_keys(model: type[BaseModel], table: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of ``table`` (a parsed TOML file) that set a secret field of ``model``, at any depth."""
    found = []
    for key, value in table.items():
        field = model.model_fields.get(key)
        if field is None:
            continue
        kinds = [field.annotation, *get_args(field.annotation)]
        if SecretStr in kinds and value:
            found.append(prefix + key)
        nested = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
        if nested is not None and isinstance(value, dict):
            found.extend(_secret_keys(nested, value, f"{prefix}{key}."))
    return found


def _refuse_secrets_readable_by_others(config_file: Path) -> None:
    """A config file that holds a secret must not be readable by every local user (seat users included)."""
    if not config_file.stat().st_mode & stat.S_IROTH:
        return
    try:
        secrets = _secret_keys(Settings, tomllib.loads(config_file.read_text()))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return  # pydantic's TOML source reports the parse error itself
    if secrets:
        raise SettingsError(
            f"{config_file} holds secrets ({', '.join(secrets)}) and is readable by every local user; "
            f"chmod 640 it (owner root, group of the service) or 600"
        )


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning pydantic's report into one that names each bad setting."""
    config_file = os.environ.get(CONFIG_ENV)
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"{CONFIG_ENV} names {config_file}, which does not exist")
    if config_file:
        _refuse_secrets_readable_by_others(Path(config_file))
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    except ValueError as error:  # a TOML file that does not parse
        raise SettingsError(f"{config_file}: {error}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()
