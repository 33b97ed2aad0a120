"""The API's description (``/openapi.json``) and its browser (``/docs``), for signed-in security admins only.

They map every route and parameter of the gateway, which helps an attacker as much as an integrator, so FastAPI's
open defaults are switched off in ``create_app`` and served here behind the security admin's session.
"""

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from gateway.sessions.deps import SecurityAdminSession

OPENAPI_URL = "/openapi.json"
router = APIRouter(include_in_schema=False)


@router.get(OPENAPI_URL)
def openapi(request: Request, admin: SecurityAdminSession) -> JSONResponse:
    return JSONResponse(request.app.openapi())


@router.get("/docs")
def docs(admin: SecurityAdminSession) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title="SOHO Gateway API")
