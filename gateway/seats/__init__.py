"""Seats: launching a published app for a home agent, the seat lease, one-time launch tokens, the policy pages."""
