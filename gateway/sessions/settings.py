"""The sessions' section of the settings (``[portal]``): sign-in throttling, re-validation, client certificates."""

from pathlib import Path
from typing import Annotated, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cryptography import x509
from pydantic import BaseModel, Field, IPvAnyNetwork, SecretStr, field_validator, model_validator

from gateway.pki.settings import CaSettings


class PortalSettings(BaseModel):
    """The browser portal: sessions, throttling, and where client certificates come from."""

    revalidate_seconds: Annotated[int, Field(ge=5, le=3600)] = 30
    """How often every live session is re-checked against the directory and the CA."""
    revocation_unknown_grace_minutes: Annotated[int, Field(ge=0, le=1440)] = 15
    """A live session whose certificate's revocation status cannot be established (CRL/OCSP server unreachable, no
    current CRL) is kept this long after its last good check, then ended (``certificate_status_unknown``)."""
    throttle_per_account: Annotated[int, Field(ge=1)] = 5
    throttle_per_source: Annotated[int, Field(ge=1)] = 20
    throttle_window_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    tls_cert_file: Path | None = None
    """Serve HTTPS and ask browsers for a client certificate (TLS terminated by the gateway itself)."""
    tls_key_file: Path | None = None
    proxy_secret: SecretStr | None = None
    """The reverse proxy proves itself by sending this in ``X-Sohogw-Proxy-Secret`` from one of ``proxy_addresses``;
    only then are its forwarded client certificate and address believed."""
    proxy_addresses: list[IPvAnyNetwork] = []
    """The addresses (networks) the reverse proxy connects to this node from; required with ``proxy_secret``. An
    address alone proves nothing (any local process can connect from 127.0.0.1), a secret alone can be replayed from
    anywhere by whoever sniffed it on the proxy's hop: a request is the proxy's only with both."""
    proxy_certificate_file: Path | None = None
    """The certificate the reverse proxy presents to this node in TLS (HAProxy's ``server … ssl crt``). When set, the
    node serves TLS (``tls_cert_file``) and believes the proxy only on a connection whose peer proved this
    certificate's key: neither a sniffed secret nor a spoofed address is enough then."""
    max_body_bytes: Annotated[int, Field(ge=4096, le=64 * 1024 * 1024)] = 256 * 1024
    """Largest request body, refused (413) before any of it is read; file uploads have their own, larger limits."""
    time_zone: str = "UTC"
    """The site's IANA time zone (``Asia/Shanghai``), in which pages show times when the browser has not said its
    own (the portal's script sets a cookie with the browser's zone on the first page)."""
    client_cert_header: str = "X-SSL-Client-Cert"
    """The header the proven proxy puts the client certificate in (URL-encoded PEM, as nginx's
    ``$ssl_client_escaped_cert``)."""

    @model_validator(mode="before")
    @classmethod
    def _no_proxy_trusted_by_address(cls, data: object) -> object:
        if isinstance(data, dict) and "trusted_proxies" in data:
            raise ValueError(
                "trusted_proxies is gone: a proxy is no longer believed for its address alone; set portal.proxy_secret "
                "(the proxy sends it in X-Sohogw-Proxy-Secret) and portal.proxy_addresses (docs/settings.md)"
            )
        return data

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{zone!r} is not an IANA time zone (e.g. Asia/Shanghai, Europe/Berlin)") from None
        return zone

    @field_validator("proxy_secret")
    @classmethod
    def _long_proxy_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. the output of: openssl rand -hex 32)")
        return secret

    @model_validator(mode="after")
    def _tls_pair(self) -> "PortalSettings":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @field_validator("proxy_certificate_file")
    @classmethod
    def _readable_proxy_certificate(cls, path: Path | None) -> Path | None:
        if path is not None:
            try:
                x509.load_pem_x509_certificate(path.read_bytes())
            except (OSError, ValueError) as error:
                raise ValueError(f"{path} is not a readable PEM certificate: {error}") from None
        return path

    @model_validator(mode="after")
    def _proxy_certificate_over_tls(self) -> "PortalSettings":
        if self.proxy_certificate_file is not None and (self.tls_cert_file is None or self.proxy_secret is None):
            raise ValueError("proxy_certificate_file needs tls_cert_file (the proxy's TLS hop) and proxy_secret")
        return self

    @model_validator(mode="after")
    def _proxy_secret_with_its_addresses(self) -> "PortalSettings":
        # Refused at start rather than defaulted: a guessed default either believes too many peers or silently
        # ignores the proxy, and every browser then fails to sign in with "no certificate".
        if self.proxy_secret is not None and not self.proxy_addresses:
            raise ValueError(
                "proxy_secret needs proxy_addresses: the addresses the reverse proxy connects to this node from "
                '(e.g. ["10.0.0.5/32"], docs/settings.md)'
            )
        return self


class HasPortalAndCaSections(Protocol):
    """What the sessions' workers read of the whole settings (the top-level ``Settings`` sits above the domains)."""

    @property
    def portal(self) -> PortalSettings: ...

    @property
    def ca(self) -> CaSettings: ...
