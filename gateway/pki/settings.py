"""The PKI's section of the settings (``[ca]``): the built-in CA, its CRL and the company CAs' CRLs."""

import stat
from pathlib import Path
from typing import Annotated, Protocol

from pydantic import BaseModel, Field, SecretStr, field_validator


class CaSettings(BaseModel):
    """The built-in certificate authority."""

    directory: Path | None = None
    """Where the root and issuing CA live; default ``<data_dir>/ca``."""
    passphrase: SecretStr | None = None
    """Encrypts the CA private keys at rest. Prefer ``passphrase_file``; without either the CLI prompts."""
    passphrase_file: Path | None = None
    organization: str = "SOHO Gateway"
    agent_cert_days: Annotated[int, Field(ge=1, le=397)] = 7
    server_cert_days: Annotated[int, Field(ge=1, le=397)] = 90
    crl_refresh_minutes: Annotated[int, Field(ge=1, le=10080)] = 60
    crl_validity_hours: Annotated[int, Field(ge=1, le=720)] = 24
    company_crl_refresh_seconds: Annotated[int, Field(ge=2, le=3600)] = 15
    """A company CA's CRL is asked for again this often (a conditional GET, so an unchanged CRL costs a 304), and live
    sessions are re-checked at once when it changed: a company revocation takes effect in seconds, not at nextUpdate."""
    expiry_warning_days: Annotated[int, Field(ge=1, le=365)] = 2
    """Shorter than the agent lifetime on purpose: a 7-day certificate is renewed, not warned about all week."""

    @field_validator("passphrase_file")
    @classmethod
    def _passphrase_file_is_private(cls, path: Path | None) -> Path | None:
        if path is None:
            return path
        if not path.is_file():
            raise ValueError(f"file {path} does not exist")
        if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(f"file {path} is readable by others; chmod 600 it")
        return path

    @property
    def resolved_directory(self) -> Path:
        assert self.directory is not None  # set by the composed Settings from data_dir
        return self.directory

    def read_passphrase(self) -> str | None:
        """The CA passphrase from the setting or its file, or None when neither is set."""
        if self.passphrase is not None:
            return self.passphrase.get_secret_value()
        if self.passphrase_file is not None:
            return self.passphrase_file.read_text().strip()
        return None


class HasCaSection(Protocol):
    """What the PKI's workers read of the whole settings (the top-level ``Settings`` sits above the domains)."""

    @property
    def ca(self) -> CaSettings: ...
