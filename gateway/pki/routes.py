"""CRL and OCSP over HTTP for relying parties (browsers, openssl, a VPN concentrator), and the CA chain."""

import base64
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from gateway.deps import ClockDep, DbSession
from gateway.errors import GatewayError
from gateway.pki.ca import chain_pem
from gateway.pki.deps import AuthorityDep, CaSettingsDep
from gateway.pki.service import answer_ocsp, current_crl, publish_crl

router = APIRouter(prefix="/pki", tags=["pki"])


@router.get("/crl", response_class=Response)
def crl(db: DbSession, authority: AuthorityDep, ca: CaSettingsDep, clock: ClockDep) -> Response:

    publication = current_crl(db) or publish_crl(
        db, authority, now=clock(), validity=timedelta(hours=ca.crl_validity_hours)
    )
    return Response(publication.der, media_type="application/pkix-crl")


@router.get("/ca.pem", response_class=Response)
def ca_chain(ca: CaSettingsDep) -> Response:
    return Response(chain_pem(ca), media_type="application/x-pem-file")


async def _body(request: Request) -> bytes:
    return await request.body()


@router.post("/ocsp", response_class=Response)
def ocsp_post(
    request_der: Annotated[bytes, Depends(_body)], db: DbSession, authority: AuthorityDep, clock: ClockDep
) -> Response:
    """A plain function, so FastAPI runs the database lookup and the signature in a worker thread, not the loop."""
    return Response(answer_ocsp(db, authority, request_der, clock()), media_type="application/ocsp-response")


@router.get("/ocsp/{encoded:path}", response_class=Response)
def ocsp_get(encoded: str, db: DbSession, authority: AuthorityDep, clock: ClockDep) -> Response:
    """RFC 6960 Appendix A.1: the base64 DER request, URL-encoded, in the path."""
    try:
        request_der = base64.b64decode(encoded, validate=False)
    except ValueError:  # binascii.Error for bad padding; a plain ValueError for characters outside ASCII
        raise GatewayError("the OCSP request in the URL is not base64") from None
    return Response(answer_ocsp(db, authority, request_der, clock()), media_type="application/ocsp-response")
