"""Image references as a ModelDeployment gives them and as the chart renders them (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str = ""
    digest: str = ""

    def values(self) -> dict[str, str]:
        return {"repository": self.repository, "tag": self.tag, "digest": self.digest}

    @property
    def rendered(self) -> str:
        """The container image charts/model-service writes (its imageRef: the digest wins)."""
        return (
            f"{self.repository}@{self.digest}" if self.digest else f"{self.repository}:{self.tag}"
        )


def split_image(image: str) -> ImageRef:
    """'reg:5000/team/app:1.2@sha256:ab' -> repository, tag, digest (tag 'latest' if none)."""
    ref, _, digest = image.partition("@")
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        repository, tag = ref[:colon], ref[colon + 1 :]
    else:
        repository, tag = ref, ("" if digest else "latest")
    return ImageRef(repository, tag, digest)
