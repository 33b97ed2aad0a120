"""The PKI routes' dependencies: the issuing CA (503 with the reason while it cannot be opened) and its settings."""

from typing import Annotated

from fastapi import Depends, Request

from certs.authority import Authority
from certs.profiles import PublicationUrls
from gateway.pki.errors import CaNotReady
from gateway.pki.service import publication_urls
from gateway.pki.settings import CaSettings


def _authority(request: Request) -> Authority:
    authority: Authority | None = request.app.state.authority
    if authority is None:
        raise CaNotReady(request.app.state.authority_problem)
    return authority


def _ca_settings(request: Request) -> CaSettings:
    return request.app.state.settings.ca  # type: ignore[no-any-return]


def _publication_urls(request: Request) -> PublicationUrls:
    return publication_urls(request.app.state.settings.public_url)


AuthorityDep = Annotated[Authority, Depends(_authority)]
PublicationUrlsDep = Annotated[PublicationUrls, Depends(_publication_urls)]
"""Where the CRL and OCSP of certificates issued now are published (from the gateway's public URL)."""
CaSettingsDep = Annotated[CaSettings, Depends(_ca_settings)]
