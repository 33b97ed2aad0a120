"""The PKI routes' dependencies: the issuing CA (503 with the reason while it cannot be opened) and its settings."""

from typing import Annotated

from fastapi import Depends, Request

from certs.authority import Authority
from gateway.pki.ca import CaNotReady
from gateway.pki.settings import CaSettings


def _authority(request: Request) -> Authority:
    authority: Authority | None = request.app.state.authority
    if authority is None:
        raise CaNotReady(request.app.state.authority_problem)
    return authority


def _ca_settings(request: Request) -> CaSettings:
    return request.app.state.settings.ca  # type: ignore[no-any-return]


AuthorityDep = Annotated[Authority, Depends(_authority)]
CaSettingsDep = Annotated[CaSettings, Depends(_ca_settings)]
