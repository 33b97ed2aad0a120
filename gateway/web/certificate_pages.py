"""The security admin's certificate actions: revoke (asked first), renew, download. (Issuing what an HR approval
requested is on the requests page, ``gateway.enrollment.certificate_routes``.)"""

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.deps import ClockDep, DbSession
from gateway.pki import service as pki
from gateway.pki.deps import AuthorityDep, CaSettingsDep, PublicationUrlsDep
from gateway.sessions.deps import CheckedForm, SecurityAdminSession
from gateway.sessions.service import sole_person_signed_in_with
from gateway.web.confirm import ask_first, done
from gateway.web.i18n import translate
from gateway.web.pages import language_of

router = APIRouter(tags=["pki"])


@router.post("/security-admin/certificates/{serial}/revoke", response_model=None)
def revoke(
    serial: str,
    request: Request,
    admin: SecurityAdminSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    ca: CaSettingsDep,
    authority: AuthorityDep,
) -> Response:
    """Revoke now (CRL republished in the same transaction): asked first, then said."""
    row = pki.get_certificate(db, serial)
    reason = str(form.get("reason", "unspecified"))
    question = translate(language_of(request), "confirm.revoke", serial=row.serial, who=row.upn or row.subject)
    label = translate(language_of(request), "admin.cert.revoke")
    if (
        asked := ask_first(request, form, question=question, confirm_label=label, cancel="/security-admin")
    ) is not None:
        return asked
    pki.revoke(
        db,
        authority,
        row.serial,
        reason,
        actor=pki.Actor(admin.login, admin.source_ip),
        now=clock(),
        crl_validity=timedelta(hours=ca.crl_validity_hours),
    )
    return done("/security-admin", "certificate_revoked")


@router.post("/security-admin/certificates/{serial}/renew")
def renew(
    serial: str,
    admin: SecurityAdminSession,
    form: CheckedForm,
    db: DbSession,
    clock: ClockDep,
    ca: CaSettingsDep,
    urls: PublicationUrlsDep,
    authority: AuthorityDep,
) -> Response:
    """A successor with the same key, identity and tunnel key; the old one stays valid until it expires."""
    pki.renew(
        db,
        authority,
        serial,
        actor=pki.Actor(admin.login, admin.source_ip),
        now=clock(),
        lifetime=timedelta(days=ca.agent_cert_days),
        urls=urls,
        sole_signer=sole_person_signed_in_with,
    )
    return done("/security-admin", "certificate_renewed")


@router.get("/security-admin/certificates/{serial}/download")
def download(serial: str, admin: SecurityAdminSession, db: DbSession) -> Response:
    """The certificate (public part only, PEM) as a file to hand to the agent."""
    row = pki.get_certificate(db, serial)
    return Response(
        row.pem,
        media_type="application/x-pem-file",
        headers={"Content-Disposition": f'attachment; filename="sohogw-{row.serial}.pem"', "Cache-Control": "no-store"},
    )
