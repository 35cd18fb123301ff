"""FastAPI model service: serves a scikit-learn model with Prometheus metrics and drift."""
