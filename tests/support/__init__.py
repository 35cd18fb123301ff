"""Helpers the test modules share (rigs, builders, fakes, waits, data): a test module
imports them from here, never from another test module or a conftest.py."""
