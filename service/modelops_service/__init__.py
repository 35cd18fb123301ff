"""FastAPI model service: serves a scikit-learn model with Prometheus metrics and drift."""

__version__ = "0.1.0"
