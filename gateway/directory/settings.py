"""Settings of the directory adapter; the lead nests `DirectorySettings` into the one Settings object."""

import logging
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, model_validator

log = logging.getLogger(__name__)

DirectoryKind = Literal["active_directory", "openldap", "builtin"]
GroupStrategy = Literal["token_groups", "in_chain", "member_of", "recursive"]

_STRATEGIES: dict[str, tuple[GroupStrategy, ...]] = {
    "active_directory": ("token_groups", "in_chain"),
    "openldap": ("member_of", "recursive"),
    "builtin": (),
}


class TlsSettings(BaseModel):
    """How the gateway trusts the directory servers. Verification is on unless explicitly switched off."""

    ca_file: Path | None = Field(default=None, description="PEM bundle of the CA that signed the servers' certificates")
    start_tls: bool = Field(default=False, description="Upgrade ldap:// connections with StartTLS before any bind")
    certificate_names: list[str] = Field(
        default_factory=list,
        description="Extra names the certificate may carry, for servers addressed by IP (Samba: DC1.<realm>)",
    )
    insecure_skip_verify: bool = Field(default=False, description="Accept any certificate; for a lab only")


class DirectorySettings(BaseModel):
    """Where the directory is and how to bind to it. Which groups grant which roles is the policy's business."""

    kind: DirectoryKind = "builtin"
    servers: list[str] = Field(default_factory=list, description="Tried in order, e.g. ldaps://dc1.corp.example:636")
    base_dn: str = ""
    bind_dn: str = Field(default="", description="Service account used by lookup(), group changes and OpenLDAP logins")
    bind_password: SecretStr = SecretStr("")
    netbios_domain: str | None = Field(default=None, description="AD: accept 'CORP\\zhang'")
    dns_domain: str | None = Field(
        default=None, description="AD: suffix of implicit UPNs 'name@<dns_domain>'; default: the base DN's DC parts"
    )
    upn_attribute: str | None = Field(
        default=None, description="OpenLDAP: attribute holding a person's UPN (certificates and UPN sign-in)"
    )
    user_dn_template: str | None = Field(default=None, description="OpenLDAP: 'uid={user},ou=people,dc=example,dc=org'")
    user_attribute: str = Field(default="uid", description="OpenLDAP: attribute holding the login name")
    tls: TlsSettings = TlsSettings()
    connect_timeout: float = Field(default=3.0, gt=0, description="Seconds to wait for TCP connect to one server")
    receive_timeout: int = Field(
        default=5, ge=1, description="Whole seconds to wait for any one answer, TLS handshake too (ldap3 needs an int)"
    )
    dead_server_retry_after: float = Field(default=30.0, ge=0, description="Seconds a failed server is tried last")
    pool_size: int = Field(default=4, ge=1, description="Service-account connections kept open")
    group_strategy: GroupStrategy | None = Field(
        default=None, description="Nested groups: AD token_groups (default) or in_chain; OpenLDAP member_of (default)"
    )
    max_group_depth: int = Field(default=5, ge=1, le=20, description="OpenLDAP: nesting levels followed upward")
    group_cache_seconds: float = Field(default=300.0, ge=0, description="AD: how long a group SID → name is remembered")
    builtin_file: Path | None = Field(default=None, description="Built-in directory: JSON file of users and groups")
    watch_changes: bool = Field(
        default=True,
        description="AD/OpenLDAP: subscribe to changes (AD change notification, OpenLDAP syncrepl) so a disabled "
        "account or a removed membership ends its sessions in seconds; the re-validation poll stays as backstop",
    )
    watch_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="Silence after which the subscription's connection is probed with a heartbeat"
    )

    @model_validator(mode="after")
    def _check_consistent(self) -> "DirectorySettings":
        """Refuse settings that would send passwords in clear text or cannot work at all."""
        allowed = _STRATEGIES[self.kind]
        if self.group_strategy is None and allowed:
            self.group_strategy = allowed[0]
        if self.group_strategy is not None and self.group_strategy not in allowed:
            raise ValueError(f"group_strategy {self.group_strategy!r} does not apply to kind {self.kind!r}")
        if self.kind == "builtin":
            if self.builtin_file is None:
                raise ValueError("the built-in directory needs builtin_file")
            return self
        if not self.servers:
            raise ValueError(f"{self.kind} needs at least one server URL")
        for url in self.servers:
            scheme = urlsplit(url).scheme.lower()
            if scheme not in ("ldap", "ldaps"):
                raise ValueError(f"server {url!r} must start with ldaps:// or ldap://")
            if scheme == "ldap" and not self.tls.start_tls:
                raise ValueError(f"server {url!r} would carry passwords in clear text: use ldaps:// or start_tls")
        if not self.base_dn or not self.bind_dn or not self.bind_password.get_secret_value():
            raise ValueError("base_dn, bind_dn and bind_password are required for a directory server")
        if self.tls.insecure_skip_verify:
            log.warning("directory TLS certificate verification is OFF (insecure_skip_verify): lab use only")
        return self
