"""The tamper-evident audit log: one ``record`` used by every domain, one ``verify_chain``."""
