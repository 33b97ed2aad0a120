"""Supervision: seat state, the live wall, view-only monitoring, alerts, reports, bulletins and surge call-in."""
