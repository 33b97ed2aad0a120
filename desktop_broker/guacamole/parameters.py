"""Turn policy's compiled Guacamole parameters into the connection a token carries, failing closed.

guacd's defaults are permissive (clipboard both ways, no recording), so a parameter that policy
forgot would silently open a channel. The broker refuses to launch unless every data-loss switch
for the protocol is stated explicitly.
"""

from collections.abc import Mapping

from desktop_broker.guacamole.token import GuacamoleConnection

PROTOCOLS = ("rdp", "vnc")

REQUIRED_SWITCHES: Mapping[str, tuple[str, ...]] = {
    "rdp": ("disable-copy", "disable-paste", "enable-drive", "enable-printing", "security"),
    "vnc": ("disable-copy", "disable-paste"),
}
"""Parameters that must be present; guacd treats an absent one as 'allowed' (RDP, VNC sections of
the Guacamole manual's connection parameters); an absent RDP `security` is "any", standard RDP security included."""

TLS_SECURITY = ("tls", "nla", "nla-ext")
"""RDP security layers negotiated over TLS, the only ones in which FreeRDP checks the host's certificate
(`cert-fingerprints` or the CAs); "any", "rdp" and "vmconnect" may run without TLS."""

JOIN_SETTINGS: Mapping[str, str] = {"read-only": "true", "disable-paste": "true"}
"""What every join carries; server.js refuses a join token without exactly these values."""

_RESERVED = ("read-only",)
"""Interactive launches never set these: read-only belongs to supervisor joins only."""


_UNVERIFIED_CERTIFICATE = ("ignore-cert", "cert-tofu")
"""guacd's own ways to skip or silently learn the RDP certificate: never (guacd's cert-tofu writes FreeRDP's
known_hosts without telling anyone; the broker's trust on first use is audited)."""


class LaunchParametersRefused(ValueError):
    """The compiled parameters would launch a seat with a data-loss switch unstated or wrong."""


def seat_connection(protocol: str, parameters: Mapping[str, str]) -> GuacamoleConnection:
    """The interactive connection for a home agent's seat, from policy's compiled parameters."""
    if protocol not in PROTOCOLS:
        raise LaunchParametersRefused(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    missing = [name for name in REQUIRED_SWITCHES[protocol] if name not in parameters]
    if missing:
        raise LaunchParametersRefused(
            f"policy did not state {', '.join(missing)} for {protocol}; refusing to launch with guacd's defaults"
        )
    not_text = [name for name, value in parameters.items() if not isinstance(value, str)]
    if not_text:
        raise LaunchParametersRefused(f"parameters must be strings, these are not: {', '.join(not_text)}")
    reserved = [name for name in _RESERVED if name in parameters]
    if reserved:
        raise LaunchParametersRefused(f"{', '.join(reserved)} is set by the broker for supervisor joins only")
    unverified = [name for name in _UNVERIFIED_CERTIFICATE if parameters.get(name, "false") != "false"]
    if unverified:
        raise LaunchParametersRefused(
            f"{', '.join(unverified)} would accept the RDP host's certificate unchecked; policy pins it "
            "(cert_fingerprints) or the broker learns it on first use, audited"
        )
    if protocol == "rdp" and parameters["security"] not in TLS_SECURITY:
        raise LaunchParametersRefused(
            f"security {parameters['security']!r} may skip TLS, and with it every check of the RDP host's "
            f"certificate; use one of {', '.join(TLS_SECURITY)}"
        )
    if not parameters.get("hostname"):
        raise LaunchParametersRefused("the seat's hostname is missing from the compiled parameters")
    return GuacamoleConnection(protocol=protocol, settings=dict(parameters))


def supervisor_view(protocol: str, connection_id: str) -> GuacamoleConnection:
    """A read-only join of the live guacd connection `connection_id` (guacd's `$…` id).

    guacd answers a join with the joined connection's own arguments and applies the joining user's
    `read-only` (no input handlers at all) and `disable-paste` (guacd grants paste per user, so a
    join without it could paste into a seat whose owner has it off). Both are always sent.
    """
    if protocol not in PROTOCOLS:
        raise LaunchParametersRefused(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if not connection_id.startswith("$"):
        raise LaunchParametersRefused(f"{connection_id!r} is not a guacd connection id (they start with '$')")
    return GuacamoleConnection(protocol=protocol, settings=dict(JOIN_SETTINGS), join=connection_id)
