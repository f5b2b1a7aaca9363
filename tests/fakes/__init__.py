"""Fake vendor servers for the end-to-end tests (see tests/support/vendor.py)."""
