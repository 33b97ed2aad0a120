"""The agent downloads their tunnel config (file or QR); security admins read the VPN's status."""

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from gateway.errors import Unavailable
from gateway.sessions.deps import AgentSession, SecurityAdminSession
from gateway.vpn.client_config import config_qr_svg
from gateway.vpn.controller import VpnController

router = APIRouter(prefix="/vpn", tags=["vpn"])


def _controller(request: Request) -> VpnController:
    controller: VpnController | None = getattr(request.app.state, "vpn", None)
    if controller is None:
        raise Unavailable("the VPN is not set up on this gateway", key="vpn_unavailable")
    return controller


Controller = Annotated[VpnController, Depends(_controller)]


def _config(caller: AgentSession, controller: Controller) -> str:
    return controller.client_config(caller)


@router.get("/config", response_class=Response)
def download_config(caller: AgentSession, config: Annotated[str, Depends(_config)]) -> Response:
    filename = "sohogw-" + re.sub(r"[^A-Za-z0-9._-]", "_", caller.login) + ".conf"
    return Response(
        config,
        media_type="text/plain; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/config.svg", response_class=Response)
def config_qr(config: Annotated[str, Depends(_config)]) -> Response:
    return Response(config_qr_svg(config), media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/status")
def vpn_status(admin: SecurityAdminSession, controller: Controller) -> dict[str, object]:
    return controller.status()
