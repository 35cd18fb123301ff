"""Reading /metrics in tests: samples by name and labels."""

from __future__ import annotations

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families


def registry_samples(registry: CollectorRegistry) -> dict[tuple, float]:
    """Every sample of a registry by (name, sorted labels), less the _created series."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


class Scrape:
    def __init__(self, text: str) -> None:
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = [s for f in self.families.values() for s in f.samples]

    def series(self, name: str) -> list:
        return [s for s in self.samples if s.name == name]

    def value(self, name: str, **labels: str) -> float:
        """The one sample of ``name`` whose labels include ``labels`` (0.0 if none)."""
        found = [
            s for s in self.series(name) if all(s.labels.get(k) == v for k, v in labels.items())
        ]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} series"
        return found[0].value if found else 0.0


def scrape(client: httpx.Client) -> Scrape:
    resp = client.get("/metrics")
    assert resp.status_code == 200
    return Scrape(resp.text)
