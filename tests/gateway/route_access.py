"""Who may use each route of the app, and how each state-changing route is protected against forged requests.

This is the one table ``test_route_access.py`` walks. Every route ``create_app`` serves (pages, JSON, websockets,
mounts) must have a row, keyed by method and path as the app declares it; a route without a row, or a row without a
route, fails the walk by name. To add a route: add its row here, choosing who it admits and its CSRF check (or the
reason it needs none).

Callers are the people and machines the walk sends requests as:
``anonymous`` (a browser through the reverse proxy, not signed in), ``agent``, ``supervisor``, ``security_admin``,
``hr`` (each signed in through the portal, the agent with its certificate, the admin with TOTP), ``half_signed_admin``
(a security admin who passed the password but not yet the second factor) and ``loopback_service`` (a program on the
gateway host itself, such as guacamole-lite or a Prometheus scraper, with no forwarding headers and no cookie).
"""

from dataclasses import dataclass
from enum import Enum

BROWSERS = ("anonymous", "agent", "supervisor", "security_admin", "hr", "half_signed_admin")
CALLERS = (*BROWSERS, "loopback_service")
SIGNED_IN_ROLES = frozenset({"agent", "supervisor", "security_admin", "hr"})


class Csrf(Enum):
    """How a state-changing route proves the request came from the gateway's own page."""

    FORM = "form"
    """The form field ``csrf`` equals the session's secret."""
    HEADER = "header"
    """The ``X-CSRF-Token`` header equals the session's secret (script requests)."""
    LOGIN_COOKIE = "login_cookie"
    """Before sign-in: the form field ``csrf`` equals the cookie the login page set."""


@dataclass(frozen=True)
class Access:
    """The callers a route serves (all others are refused before the route does anything) and its CSRF check.

    ``csrf_exempt`` is the reason a state-changing route needs no CSRF token (no cookie authenticates it, so a
    forged browser request carries nothing it can abuse); it is empty for routes that read only.
    ``example`` fills the path's parameters for the walk (default: every parameter is ``missing``).
    """

    admits: frozenset[str]
    csrf: Csrf | None = None
    csrf_exempt: str = ""
    example: str = ""


def role(name: str, csrf: Csrf | None = None, example: str = "") -> Access:
    return Access(frozenset({name}), csrf, example=example)


def signed_in(csrf: Csrf | None = None) -> Access:
    return Access(SIGNED_IN_ROLES, csrf)


PUBLIC = Access(frozenset(CALLERS))
SECOND_FACTOR_PENDING = frozenset({"half_signed_admin"})
LOOPBACK_ONLY = "called by a program on the gateway host, refused through the proxy; no cookie authenticates it"
SIGNED_MESSAGE = "an HMAC signature over the body authenticates it, checked by the route; no cookie does"
NOBODY_WITHOUT_TOKEN = frozenset[str]()
"""Websockets opened with a one-time token: no caller gets through without one, cookie or not (the tokens'
own tests, test_launch_rules.py and test_view_only_*.py, prove who gets in with one)."""

AGENT, SUPERVISOR, ADMIN, HR = "agent", "supervisor", "security_admin", "hr"

ROUTES: dict[tuple[str, str], Access] = {
    # FastAPI's own API description pages
    ("GET", "/openapi.json"): role(ADMIN),
    ("GET", "/docs"): role(ADMIN),
    # portal pages
    ("GET", "/"): PUBLIC,
    ("GET", "/lang/{language}"): Access(frozenset(CALLERS), example="/lang/en"),
    ("GET", "/agent"): role(AGENT),
    ("GET", "/supervisor"): role(SUPERVISOR),
    ("GET", "/security-admin"): role(ADMIN),
    ("GET", "/hr"): role(HR),
    ("GET", "/healthz"): PUBLIC,
    ("MOUNT", "/static"): Access(frozenset(CALLERS), example="/static/portal.css"),
    # sign-in, second factor, sign-out, live sessions
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): Access(frozenset(CALLERS), Csrf.LOGIN_COOKIE),
    ("GET", "/login/second-factor"): Access(SECOND_FACTOR_PENDING),
    ("POST", "/login/second-factor"): Access(SECOND_FACTOR_PENDING, Csrf.FORM),
    ("POST", "/login/second-factor/enrolment-code"): Access(SECOND_FACTOR_PENDING, Csrf.FORM),
    ("GET", "/security-admin/second-factor"): role(ADMIN),
    ("POST", "/security-admin/second-factor"): role(ADMIN, Csrf.FORM),
    ("POST", "/logout"): signed_in(Csrf.FORM),
    ("GET", "/security-admin/sessions"): role(ADMIN),
    ("POST", "/security-admin/sessions/{session_id}/end"): role(ADMIN, Csrf.FORM),
    # PKI publication (read by anyone who checks a certificate)
    ("GET", "/pki/crl"): PUBLIC,
    ("GET", "/pki/ca.pem"): PUBLIC,
    ("POST", "/pki/ocsp"): Access(frozenset(CALLERS), csrf_exempt="an OCSP request changes nothing (RFC 6960)"),
    ("GET", "/pki/ocsp/{encoded:path}"): PUBLIC,
    # enrolment: the applicant
    ("GET", "/enrollment"): role(AGENT),
    ("POST", "/enrollment/apply"): role(AGENT, Csrf.FORM),
    ("POST", "/enrollment/withdraw"): role(AGENT, Csrf.FORM),
    ("GET", "/enrollment/envcheck"): role(AGENT),
    ("POST", "/enrollment/envcheck/runs"): role(AGENT, Csrf.HEADER),
    ("GET", "/enrollment/envcheck/download"): role(AGENT),
    ("POST", "/enrollment/envcheck/upload"): role(AGENT, Csrf.HEADER),
    ("GET", "/enrollment/envcheck/ping"): role(AGENT),
    ("POST", "/enrollment/envcheck/runs/{run_id}/result"): role(AGENT, Csrf.HEADER),
    # enrolment: HR
    ("GET", "/hr/enrollment"): role(HR),
    ("POST", "/hr/enrollment/start"): role(HR, Csrf.FORM),
    ("GET", "/hr/enrollment/{application_id}"): role(HR),
    ("POST", "/hr/enrollment/{application_id}/decide"): role(HR, Csrf.FORM),
    ("POST", "/hr/enrollment/{application_id}/override"): role(HR, Csrf.FORM),
    ("POST", "/hr/enrollment/{application_id}/close"): role(HR, Csrf.FORM),
    ("POST", "/hr/enrollment/{application_id}/recheck"): role(HR, Csrf.FORM),
    ("POST", "/hr/enrollment/{application_id}/evidence"): role(HR, Csrf.FORM),
    ("GET", "/hr/enrollment/{application_id}/evidence/{evidence_id}"): role(HR),
    ("GET", "/hr/enrollment-import"): role(HR),
    ("POST", "/hr/enrollment-import"): role(HR, Csrf.FORM),
    ("GET", "/hr/enrollment-import/{import_id}"): role(HR),
    # the security admin's certificate requests and policy
    ("GET", "/security-admin/callback-numbers"): role(ADMIN),
    ("POST", "/security-admin/callback-numbers/{number_id}/approve"): role(ADMIN, Csrf.FORM),
    ("GET", "/security-admin/certificate-requests"): role(ADMIN),
    ("POST", "/security-admin/certificate-requests/{request_id}/issue"): role(ADMIN, Csrf.FORM),
    ("POST", "/security-admin/certificates/{serial}/revoke"): role(ADMIN, Csrf.FORM),
    ("POST", "/security-admin/certificates/{serial}/renew"): role(ADMIN, Csrf.FORM),
    ("GET", "/security-admin/certificates/{serial}/download"): role(ADMIN),
    ("POST", "/security-admin/certificate-requests/{request_id}"): role(ADMIN, Csrf.FORM),
    ("GET", "/security-admin/policy"): role(ADMIN),
    ("POST", "/security-admin/policy/import"): role(ADMIN, Csrf.FORM),
    ("POST", "/security-admin/policy/rollback"): role(ADMIN, Csrf.FORM),
    ("GET", "/security-admin/policy/export"): role(ADMIN),
    # guacamole-lite's calls on loopback
    ("POST", "/internal/launch/redeem"): Access(frozenset({"loopback_service"}), csrf_exempt=LOOPBACK_ONLY),
    ("GET", "/internal/launch/alive"): Access(frozenset({"loopback_service"})),
    ("POST", "/internal/launch/connected"): Access(frozenset({"loopback_service"}), csrf_exempt=LOOPBACK_ONLY),
    ("POST", "/internal/launch/closed"): Access(frozenset({"loopback_service"}), csrf_exempt=LOOPBACK_ONLY),
    ("POST", "/internal/launch/input"): Access(frozenset({"loopback_service"}), csrf_exempt=LOOPBACK_ONLY),
    # seats
    ("GET", "/seats/view"): role(SUPERVISOR),
    ("WEBSOCKET", "/seats/view/ws"): Access(NOBODY_WITHOUT_TOKEN),
    ("GET", "/agent/seats/watchers"): role(AGENT),
    ("GET", "/guacamole-js/guacamole-common.js"): PUBLIC,
    ("GET", "/lib/chart.umd.min.js"): PUBLIC,
    ("POST", "/agent/apps/{app_id}/launch"): role(AGENT, Csrf.FORM),
    ("POST", "/agent/apps/{app_id}/reconnect"): role(AGENT, Csrf.HEADER),
    ("WEBSOCKET", "/seats/ws"): Access(NOBODY_WITHOUT_TOKEN),
    ("MOUNT", "/novnc"): Access(frozenset(CALLERS), example="/novnc/core/rfb.js"),
    ("GET", "/seats/viewer/{name}"): PUBLIC,
    # supervision
    ("GET", "/supervision/wall"): role(SUPERVISOR),
    ("GET", "/supervision/wall/events"): role(SUPERVISOR),
    ("GET", "/supervision/wall/screens/{session_id}"): role(SUPERVISOR),
    ("POST", "/supervision/watch/{session_id}"): role(SUPERVISOR, Csrf.FORM),
    ("POST", "/supervision/watch/{watch_id}/end"): role(SUPERVISOR, Csrf.FORM),
    ("POST", "/supervision/help/{session_id}/answer"): role(SUPERVISOR, Csrf.FORM),
    ("GET", "/supervision/alerts"): role(SUPERVISOR),
    ("GET", "/supervision/agents/{session_id}/recordings"): role(SUPERVISOR),
    ("GET", "/supervision/agents/{session_id}/recordings/{recording_id}"): role(SUPERVISOR),
    ("GET", "/supervision/agents/{session_id}/recordings/{recording_id}/data"): role(SUPERVISOR),
    ("POST", "/supervision/agents/{session_id}/call/{mode}"): role(
        SUPERVISOR, Csrf.HEADER, example="/supervision/agents/missing/call/listen"
    ),
    ("POST", "/supervision/agents/{session_id}/call/{monitor_id}/end"): role(SUPERVISOR, Csrf.HEADER),
    ("POST", "/supervision/alerts/{alert_id}/ack"): role(SUPERVISOR, Csrf.FORM),
    ("GET", "/supervision/surge"): role(SUPERVISOR),
    ("POST", "/supervision/standby"): role(SUPERVISOR, Csrf.FORM),
    ("POST", "/supervision/standby/{login}/remove"): role(SUPERVISOR, Csrf.FORM),
    ("POST", "/supervision/call-in"): role(SUPERVISOR, Csrf.FORM),
    ("GET", "/supervision/reports"): role(SUPERVISOR),
    ("GET", "/supervision/reports.csv"): role(SUPERVISOR),
    ("GET", "/agent/work-state"): role(AGENT),
    ("GET", "/agent/status-bar"): role(AGENT),
    ("POST", "/agent/work-state"): role(AGENT, Csrf.FORM),
    ("POST", "/agent/help"): role(AGENT, Csrf.FORM),
    ("GET", "/agent/bulletins"): role(AGENT),
    ("GET", "/supervision/bulletins"): role(SUPERVISOR),
    ("POST", "/supervision/bulletins"): role(SUPERVISOR, Csrf.FORM),
    ("POST", "/supervision/bulletins/{bulletin_id}/edit"): role(SUPERVISOR, Csrf.FORM),
    ("POST", "/supervision/bulletins/{bulletin_id}/remove"): role(SUPERVISOR, Csrf.FORM),
    ("POST", "/supervision/api/work-state"): Access(frozenset(), csrf_exempt=SIGNED_MESSAGE),
    ("GET", "/metrics"): Access(frozenset({"loopback_service"})),
    # voice
    ("POST", "/voice/webhook/events"): Access(frozenset(), csrf_exempt=SIGNED_MESSAGE),
    ("POST", "/voice/sms/inbound"): Access(frozenset(), csrf_exempt=SIGNED_MESSAGE),
    ("GET", "/voice/numbers"): role(AGENT),
    ("POST", "/voice/numbers"): role(AGENT, Csrf.HEADER),
    ("POST", "/voice/numbers/{number_id}/confirm"): role(AGENT, Csrf.HEADER),
    ("DELETE", "/voice/numbers/{number_id}"): role(AGENT, Csrf.HEADER),
    ("POST", "/voice/ready"): role(AGENT, Csrf.HEADER),
    ("GET", "/voice/leg"): role(AGENT),
    ("GET", "/voice/calls"): role(AGENT),
    ("GET", "/agent/phone"): role(AGENT),
    ("POST", "/agent/phone/numbers"): role(AGENT, Csrf.FORM),
    ("POST", "/agent/phone/hr-number"): role(AGENT, Csrf.FORM),
    ("POST", "/agent/phone/numbers/{number_id}/confirm"): role(AGENT, Csrf.FORM),
    ("POST", "/agent/phone/numbers/{number_id}/remove"): role(AGENT, Csrf.FORM),
    ("POST", "/agent/phone/ready"): role(AGENT, Csrf.FORM),
    # the agent's VPN
    ("GET", "/vpn/config"): role(AGENT),
    ("GET", "/vpn/config.svg"): role(AGENT),
    ("GET", "/vpn/status"): role(ADMIN),
}
