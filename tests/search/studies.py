"""Tiny study files for the integration tests: ``losslab.testing``'s."""

from losslab.testing.studies import BASE, write_study

__all__ = ["BASE", "write_study"]
