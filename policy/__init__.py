"""Declarative per-group policy: evaluation, explanation and compilation to backend parameters.

Pure: imports nothing of the gateway, knows neither the database nor the server.
"""
