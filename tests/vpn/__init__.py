"""Tests of the VPN adapters, and the network-namespace harness other test folders import."""
