"""HR vetting of home-work enrollment: stages, evidence, the home-environment check, and the hand-off on approval.

See docs/enrollment.md. Routes: ``gateway.enrollment.routes.router``; background work:
``gateway.enrollment.workers.enrollment_workers``; settings: ``gateway.enrollment.settings.EnrollmentSettings``
(``settings.enrollment``).
"""
