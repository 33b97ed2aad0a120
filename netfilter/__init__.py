"""Netfilter from Python, for the gateway's VPN scope and the seats' allow-lists alike: nothing of ours below it."""
