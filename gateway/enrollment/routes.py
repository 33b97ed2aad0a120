"""All enrollment routes under one ``router`` for the app to include."""

from fastapi import APIRouter

from gateway.enrollment import (
    applicant_routes,
    certificate_routes,
    envcheck_routes,
    evidence_routes,
    hr_routes,
    import_routes,
)

router = APIRouter()
for part in (applicant_routes, envcheck_routes, hr_routes, evidence_routes, import_routes, certificate_routes):
    router.include_router(part.router)
