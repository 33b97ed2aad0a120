"""The gateway's side of the PKI: the register of issued certificates, revocations, CRLs and trusted CAs.

The X.509 work itself is in the ``certs`` library; this domain stores what it produced and serves CRL and OCSP.
"""
