"""Open the built-in CA with its settings' passphrase, once per process."""

from certs.authority import CHAIN, ISSUING_CERT, Authority, load_authority
from certs.errors import CertificateError
from gateway.pki.errors import CaNotReady
from gateway.pki.settings import CaSettings


def open_authority(ca: CaSettings, passphrase: str | None = None) -> Authority:
    """The issuing CA, or a clear error saying what to do (init it, give the passphrase, fix key permissions)."""
    directory = ca.resolved_directory
    if not (directory / ISSUING_CERT).exists():
        raise CaNotReady(f"no CA in {directory}; create it with `sohogw ca init`")
    secret = passphrase if passphrase is not None else ca.read_passphrase()
    if secret is None:
        raise CaNotReady("the CA passphrase is not set: set SOHOGW_CA__PASSPHRASE_FILE (or SOHOGW_CA__PASSPHRASE)")
    try:
        return load_authority(directory, secret)
    except CertificateError as error:
        raise CaNotReady(str(error)) from None


def chain_pem(ca: CaSettings) -> bytes:
    return (ca.resolved_directory / CHAIN).read_bytes()
