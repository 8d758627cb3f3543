"""Offline check-in desks verifying cards against signed event bundles (issue #6)."""
