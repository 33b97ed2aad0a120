"""HR vetting of home-work enrollment: stages, evidence, the home-environment check, and the hand-off on approval.

See docs/enrollment.md. Routes: ``gateway.enrollment.routes.router``; jobs: ``gateway.enrollment.jobs.register``;
settings: ``gateway.enrollment.settings.EnrollmentSettings`` (``settings.enrollment``).
"""
