"""Helpers shared by test tiers (e.g. service_process: run the real model service)."""
