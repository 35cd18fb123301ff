"""Where a model artifact lives: ``spec.model.uri`` parsed into a ModelUri (pure).

Four kinds, each naming a directory that holds ``model.joblib`` + ``model.json``:

- ``s3://bucket/prefix``   an S3-compatible store (the endpoint is a separate setting)
- ``https://host/prefix``  any HTTPS server
- ``pvc://claim/path``     a PersistentVolumeClaim, mounted read-only into the fetcher
- ``/models/wine/2``       a directory inside the image (nothing to fetch)

Keys and paths are held to a small alphabet, segment by segment: no ``..``, no
``.``, no empty segment, no backslash, no percent-escape. That keeps every file
the fetcher writes inside its target directory whatever the URI says, and keeps
an S3 key's signed form equal to what the server sees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Scheme = Literal["s3", "https", "pvc", "dir"]
REMOTE_SCHEMES = frozenset({"s3", "https", "pvc"})
# The artifact's two files, fetched into the target directory under these names.
ARTIFACT_FILES = ("model.json", "model.joblib")
MAX_URI_LENGTH = 1024

_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
# S3 bucket names (path-style addressing): 3-63 of lower case, digits, '.', '-'.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# A PVC name is a DNS-1123 subdomain; the claims we mount are labels in practice.
_CLAIM = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# host[:port]: a DNS name or an IPv4 address (no userinfo, no IPv6 literal).
_HOST = re.compile(
    r"^(?P<host>[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(:(?P<port>[0-9]{1,5}))?$"
)


class UriError(ValueError):
    """The URI is not one the fetcher accepts; the message says why."""


@dataclass(frozen=True)
class ModelUri:
    scheme: Scheme
    location: str  # bucket (s3), host[:port] (https), claim (pvc); "" for dir
    path: str  # the prefix inside it, '/'-joined safe segments; the absolute dir for dir

    @property
    def remote(self) -> bool:
        return self.scheme in REMOTE_SCHEMES

    def object_path(self, name: str) -> str:
        """The key or path of one artifact file under the prefix."""
        return f"{self.path}/{name}" if self.path else name

    def __str__(self) -> str:
        if self.scheme == "dir":
            return self.path
        return f"{self.scheme}://{self.location}/{self.path}"


def _segments(path: str, what: str, *, allow_empty: bool) -> str:
    path = path.removesuffix("/")  # one trailing slash, as in "s3://bucket/prefix/"
    if not path:
        if allow_empty:
            return ""
        raise UriError(f"{what} is empty")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise UriError(f"{what} {path!r}: empty, '.' or '..' segment")
        if not _SEGMENT.match(segment):
            raise UriError(
                f"{what} {path!r}: segment {segment!r} may hold only letters, digits, "
                "'.', '_' and '-'"
            )
    return path


def parse_model_uri(text: str) -> ModelUri:
    """Parse a model URI, or raise UriError saying what is wrong with it."""
    if not isinstance(text, str) or not text:
        raise UriError("the model uri is empty")
    if len(text) > MAX_URI_LENGTH:
        raise UriError(f"the model uri is longer than {MAX_URI_LENGTH} characters")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in text):
        raise UriError("the model uri holds a space, a control or a non-ASCII character")
    if text.startswith("/"):
        return ModelUri("dir", "", "/" + _segments(text[1:], "directory", allow_empty=False))
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise UriError(f"{text!r}: want s3://, https://, pvc:// or an absolute directory")
    if any(c in rest for c in "?#@%\\"):
        raise UriError(f"{text!r}: no query, fragment, credentials or escapes in a model uri")
    location, _, path = rest.partition("/")
    if scheme == "s3":
        if not _BUCKET.match(location) or ".." in location:
            raise UriError(f"{text!r}: {location!r} is not an S3 bucket name")
        return ModelUri("s3", location, _segments(path, "key prefix", allow_empty=True))
    if scheme == "https":
        match = _HOST.match(location)
        if not match or ".." in location or not 0 < int(match["port"] or 443) < 65536:
            raise UriError(f"{text!r}: {location!r} is not host[:port]")
        return ModelUri("https", location.lower(), _segments(path, "path", allow_empty=True))
    if scheme == "pvc":
        if not _CLAIM.match(location):
            raise UriError(f"{text!r}: {location!r} is not a PersistentVolumeClaim name")
        return ModelUri("pvc", location, _segments(path, "path", allow_empty=True))
    raise UriError(f"{text!r}: scheme {scheme!r} is not one of s3, https, pvc")
