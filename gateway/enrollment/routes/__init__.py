"""All enrollment routes under one ``router`` for the app to include."""

from fastapi import APIRouter

from gateway.enrollment.routes import applicant, certificate, csv_import, envcheck, evidence, hr

router = APIRouter()
for part in (applicant, envcheck, hr, evidence, csv_import, certificate):
    router.include_router(part.router)
