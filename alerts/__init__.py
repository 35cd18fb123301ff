"""Prometheus rules of the model service: a template, its parameters, and the renderer."""
