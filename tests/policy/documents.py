"""Small policy documents for the unit tests, written as an admin would write them."""

from datetime import UTC, datetime
from textwrap import dedent, indent

from policy import PolicyDocument, load_policy

CATALOGUE = """\
version: 1
apps:
  - {id: console, title: Console, backend: x11, command: [console-app, --kiosk]}
  - {id: billing, title: Billing, backend: guacamole, protocol: rdp, host: 10.20.0.10, remote_app: BILLING}
  - {id: crm, title: CRM, backend: guacamole, protocol: vnc, host: 10.20.0.11}
roles:
  supervisor: {require_totp: true}
  hr: {require_client_certificate: false}
"""
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def policy(groups: str) -> PolicyDocument:
    """A document with the catalogue above and the given `groups:` body (YAML, any indentation)."""
    return load_policy(CATALOGUE + "groups:\n" + indent(dedent(groups), "  "))
