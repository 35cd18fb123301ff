"""``python -m modelops_service fetch``: bring a model artifact from its URI into a directory.

It runs as the init container of the model service's pod (same image) and writes
``model.json`` + ``model.joblib`` into an emptyDir that the service then loads.

Safety, in order:

- The URI is parsed first (model_uri): no file name the fetcher writes comes from it.
- Each file streams into a temporary name in the target directory, counted against
  a byte cap as it arrives (a larger object stops at the cap, the disk never fills).
- model.joblib's sha256 is compared with the declared one before it gets its real
  name; a mismatch deletes it. Nothing is unpickled here, and nothing unverified is
  ever under the name the service loads (and a failed init container never lets the
  service start at all).
- Redirects are followed only to the same scheme, host and port, so the credentials
  (SigV4 for s3://; a bearer token or basic auth for https://, from the mounted Secret)
  never reach another server.

A failure exits with one JSON line naming its class (``not_found``, ``forbidden``,
``digest_mismatch``, ``too_large``, ``timeout``, ``unreachable``, ``bad_response``,
``invalid``) and an exit code of its own; the same line goes to the termination
message file, so ``kubectl describe pod`` and the operator's Degraded message quote it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import ssl
import tempfile
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import httpx
import orjson
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelops_service.model_uri import ARTIFACT_FILES, ModelUri, UriError, parse_model_uri

log = logging.getLogger("modelops_service.fetch")

CHUNK = 1 << 16
MAX_REDIRECTS = 3
# How much of an error response is read for its S3 error code.
ERROR_BODY_LIMIT = 4096
ARTIFACT = "model.joblib"  # the pickle: the one file whose digest the spec declares


class Failure(StrEnum):
    """A failure class: its name is in the error line, its exit code is its own."""

    INVALID = "invalid"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    DIGEST_MISMATCH = "digest_mismatch"
    TOO_LARGE = "too_large"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    BAD_RESPONSE = "bad_response"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self]


# 2 is the service's own configuration error (__main__.EXIT_CONFIG); the rest are apart
# from Python's 1 (an uncaught exception) and the shell's 126-165.
EXIT_CODES = {
    Failure.INVALID: 2,
    Failure.NOT_FOUND: 10,
    Failure.FORBIDDEN: 11,
    Failure.DIGEST_MISMATCH: 12,
    Failure.TOO_LARGE: 13,
    Failure.TIMEOUT: 14,
    Failure.UNREACHABLE: 15,
    Failure.BAD_RESPONSE: 16,
}


class FetchError(Exception):
    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(f"{failure}: {message}")
        self.failure = failure
        self.message = message


class FetchSettings(BaseSettings):
    """The fetcher's settings, environment prefix ``MODELOPS_FETCH_`` (the chart sets them)."""

    model_config = SettingsConfigDict(env_prefix="MODELOPS_FETCH_", extra="ignore")

    uri: str = Field(description="Where the artifact lives: s3://, https:// or pvc://.")
    sha256: str = Field(description="The sha256 model.joblib must have (64 hex digits).")
    dest: Path = Field(default=Path("/model"), description="The directory to fill.")
    max_bytes: int = Field(
        default=1 << 30, ge=1, description="Most bytes fetched (both files together)."
    )
    timeout_seconds: float = Field(
        default=300.0, gt=0, description="Longest the whole fetch may take."
    )
    endpoint: str = Field(
        default="",
        description="S3 endpoint URL (http:// or https://) for S3-compatible stores; empty: "
        "the AWS endpoint of the region.",
    )
    region: str = Field(default="us-east-1", description="S3 region (for the signature).")
    credentials_dir: Path = Field(
        default=Path("/var/run/secrets/modelops.io/fetch"),
        description="The mounted Secret. For s3://, files AWS_ACCESS_KEY_ID, "
        "AWS_SECRET_ACCESS_KEY and optionally AWS_SESSION_TOKEN; for https://, token (sent as "
        "a bearer token) or username and password (basic auth). Absent: anonymous requests.",
    )
    ca_file: Path | None = Field(
        default=None, description="PEM bundle to trust for https (default: the system's)."
    )
    pvc_root: Path = Field(
        default=Path("/mnt/model-source"), description="Where the pvc:// claim is mounted."
    )
    termination_log: Path = Field(
        default=Path("/dev/termination-log"),
        description="Where the error line is also written (the container's termination message).",
    )

    @field_validator("ca_file", mode="before")
    @classmethod
    def _unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        value = value.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", value):
            raise ValueError("must be 64 hex digits: a remote artifact is never fetched unchecked")
        return value


# --- sources: open one artifact file as a stream of chunks -------------------------------


@dataclass(frozen=True)
class Stream:
    size: int | None  # declared length, when the source says
    chunks: Iterator[bytes]


class Source(Protocol):
    def open(self, name: str) -> contextlib.AbstractContextManager[Stream]: ...


def read_secret_key(directory: Path, key: str) -> str | None:
    """One key of the mounted Secret (surrounding whitespace dropped), None when absent."""
    try:
        return (directory / key).read_text().strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise FetchError(Failure.INVALID, f"cannot read {key} in {directory}: {err}") from None


@dataclass(frozen=True)
class Credentials:
    """S3 keys: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optionally AWS_SESSION_TOKEN."""

    access_key_id: str
    secret_access_key: str
    session_token: str = ""

    @classmethod
    def read(cls, directory: Path) -> Credentials | None:
        """The keys of a mounted Secret, or None when none is mounted."""
        key = read_secret_key(directory, "AWS_ACCESS_KEY_ID")
        secret = read_secret_key(directory, "AWS_SECRET_ACCESS_KEY")
        if key is None or secret is None:
            return None
        return cls(key, secret, read_secret_key(directory, "AWS_SESSION_TOKEN") or "")


# RFC 6750's b64token: what a bearer token may hold in a header
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.header = f"Bearer {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self.header
        yield request


def https_auth(directory: Path) -> httpx.Auth | None:
    """The https credentials of a mounted Secret: ``token`` (bearer) or ``username`` and
    ``password`` (basic, the keys of a kubernetes.io/basic-auth Secret); None without them."""
    token = read_secret_key(directory, "token")
    username = read_secret_key(directory, "username")
    password = read_secret_key(directory, "password")
    if token is not None and (username is not None or password is not None):
        raise FetchError(
            Failure.INVALID, f"{directory}: set token or username and password, not both"
        )
    if token is not None:
        if not _BEARER_TOKEN.fullmatch(token):
            raise FetchError(
                Failure.INVALID, f"{directory}/token holds characters a bearer token cannot"
            )
        return BearerAuth(token)
    if username is None and password is None:
        return None
    if username is None or password is None:
        missing = "username" if username is None else "password"
        raise FetchError(Failure.INVALID, f"{directory}: password and username go together, "
                                          f"{missing} is missing")  # fmt: skip
    if ":" in username:
        raise FetchError(Failure.INVALID, f"{directory}/username: basic auth forbids ':' in it")
    return httpx.BasicAuth(username, password)


class HttpSource:
    """GET over HTTP(S), redirects only within one origin; S3 requests signed (SigV4), https
    ones with the Secret's bearer token or basic auth. The credentials go with every hop,
    which is safe because no hop leaves the origin: a redirect elsewhere is refused before
    anything is sent there."""

    def __init__(
        self, base: str, client: httpx.Client, auth: httpx.Auth | None, shown: ModelUri
    ) -> None:
        self.base = httpx.URL(base.rstrip("/") + "/")
        self.client = client
        self.auth = auth
        self.shown = shown

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Stream]:
        url = self.base.join(self.shown.object_path(name))
        origin = (url.scheme, url.host, url.port)
        what = f"{self.shown.scheme}://{self.shown.location}/{self.shown.object_path(name)}"
        for _ in range(MAX_REDIRECTS + 1):
            request = self.client.build_request("GET", url, headers={"accept-encoding": "identity"})
            response = self.client.send(request, auth=self.auth, stream=True)
            try:
                if response.is_redirect:
                    target = url.join(response.headers.get("location", ""))
                    if (target.scheme, target.host, target.port) != origin:
                        raise FetchError(
                            Failure.BAD_RESPONSE,
                            f"{what}: redirect to another origin refused ({target.scheme}://"
                            f"{target.host}:{target.port or ''})",
                        )
                    url = target
                    continue
                if response.status_code != 200:
                    raise status_error(what, response)
                length = response.headers.get("content-length")
                size = int(length) if length and length.isdigit() else None
                # as the bytes arrive (a chunk size would buffer, and a slow drip would dodge the
                # deadline until a whole chunk had come)
                yield Stream(size, response.iter_raw())
                return
            finally:
                response.close()
        raise FetchError(Failure.BAD_RESPONSE, f"{what}: more than {MAX_REDIRECTS} redirects")


def status_error(what: str, response: httpx.Response) -> FetchError:
    """The failure class of a non-200 answer, with the S3 error code when there is one."""
    body = b""
    with contextlib.suppress(httpx.HTTPError):
        for chunk in response.iter_raw(1024):
            body += chunk
            if len(body) >= ERROR_BODY_LIMIT:
                break
    match = re.search(rb"<Code>([A-Za-z0-9]{1,64})</Code>", body)
    said = f"HTTP {response.status_code}" + (f" {match[1].decode()}" if match else "")
    status = response.status_code
    if status == 404:
        return FetchError(Failure.NOT_FOUND, f"{what}: {said}")
    if status in (401, 403):
        return FetchError(Failure.FORBIDDEN, f"{what}: {said}")
    return FetchError(Failure.BAD_RESPONSE, f"{what}: {said}")


class PvcSource:
    """A file under the mounted claim; a symlink that leads out of it counts as not found."""

    def __init__(self, root: Path, uri: ModelUri) -> None:
        self.root = root
        self.uri = uri

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[Stream]:
        what = f"{self.uri}/{name}"
        root = self.root.resolve()
        path = (root / self.uri.object_path(name)).resolve()
        if not path.is_relative_to(root):
            raise FetchError(Failure.NOT_FOUND, f"{what}: leads outside the claim")
        try:
            fh = open(path, "rb")  # noqa: SIM115 (closed below, after the caller streamed it)
        except FileNotFoundError:
            raise FetchError(Failure.NOT_FOUND, f"{what}: no such file") from None
        except PermissionError:
            raise FetchError(Failure.FORBIDDEN, f"{what}: permission denied") from None
        except OSError as err:
            raise FetchError(Failure.BAD_RESPONSE, f"{what}: {err.strerror}") from None
        with fh:
            size = os.fstat(fh.fileno()).st_size
            yield Stream(size, iter(lambda: fh.read(CHUNK), b""))


def s3_endpoint(settings: FetchSettings) -> str:
    return settings.endpoint or f"https://s3.{settings.region}.amazonaws.com"


def open_source(uri: ModelUri, settings: FetchSettings, client: httpx.Client) -> Source:
    if uri.scheme == "pvc":
        return PvcSource(settings.pvc_root, uri)
    if uri.scheme == "https":
        auth = https_auth(settings.credentials_dir)
        return HttpSource(f"https://{uri.location}", client, auth, uri)
    if uri.scheme == "s3":
        endpoint = s3_endpoint(settings)
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?", endpoint):
            raise FetchError(Failure.INVALID, f"endpoint {endpoint!r} is not http(s)://host[:port]")
        creds = Credentials.read(settings.credentials_dir)
        auth = None
        if creds is not None:
            from httpx_auth import AWS4Auth  # only S3 needs it

            auth = AWS4Auth(
                creds.access_key_id,
                creds.secret_access_key,
                settings.region,
                "s3",
                security_token=creds.session_token or None,
            )
        return HttpSource(f"{endpoint.rstrip('/')}/{uri.location}", client, auth, uri)
    raise FetchError(Failure.INVALID, f"{uri}: a directory in the image needs no fetch")


# --- the fetch -----------------------------------------------------------------------------


@dataclass
class Budget:
    remaining: int
    deadline: float

    def take(self, n: int, what: str) -> None:
        self.remaining -= n
        if self.remaining < 0:
            raise FetchError(Failure.TOO_LARGE, f"{what}: more than the cap allows")
        if time.monotonic() > self.deadline:
            raise FetchError(Failure.TIMEOUT, f"{what}: not done within the time allowed")


def stage(source: Source, name: str, dest: Path, budget: Budget, cap: int) -> tuple[Path, str]:
    """Stream one file into a temporary name in ``dest``: (that path, its sha256)."""
    fd, tmp = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".partial")
    path = Path(tmp)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, source.open(name) as stream:
            if stream.size is not None and stream.size > budget.remaining:
                raise FetchError(
                    Failure.TOO_LARGE, f"{name}: {stream.size} bytes, the cap is {cap} bytes"
                )
            for chunk in stream.chunks:
                budget.take(len(chunk), f"{name} (cap {cap} bytes)")
                digest.update(chunk)
                out.write(chunk)
        return path, digest.hexdigest()
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def fetch(settings: FetchSettings) -> dict[str, str]:
    """Fill ``settings.dest`` with the verified artifact; {file name: sha256}. FetchError."""
    try:
        uri = parse_model_uri(settings.uri)
    except UriError as err:
        raise FetchError(Failure.INVALID, str(err)) from None
    dest = settings.dest
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise FetchError(Failure.INVALID, f"cannot create {dest}: {err.strerror}") from None
    budget = Budget(settings.max_bytes, time.monotonic() + settings.timeout_seconds)
    verify: ssl.SSLContext | bool = True
    if settings.ca_file is not None:
        try:
            verify = ssl.create_default_context(cafile=str(settings.ca_file))
        except (OSError, ssl.SSLError) as err:
            raise FetchError(Failure.INVALID, f"ca file {settings.ca_file}: {err}") from None
    staged: list[tuple[Path, str]] = []
    digests: dict[str, str] = {}
    try:
        with httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(min(settings.timeout_seconds, 30.0)),
            follow_redirects=False,
            trust_env=False,  # no proxy or netrc from the pod's environment
        ) as client:
            source = open_source(uri, settings, client)
            for name in ARTIFACT_FILES:
                path, digest = stage(source, name, dest, budget, settings.max_bytes)
                staged.append((path, name))
                digests[name] = digest
        if digests[ARTIFACT] != settings.sha256:
            raise FetchError(
                Failure.DIGEST_MISMATCH,
                f"{uri}/{ARTIFACT} has sha256 {digests[ARTIFACT]}, the spec declares "
                f"{settings.sha256}; nothing was loaded",
            )
        # Verified: give the files their names (the pickle last, so whoever sees it sees both).
        for path, name in sorted(staged, key=lambda item: item[1] == ARTIFACT):
            os.replace(path, dest / name)
        staged.clear()
        return digests
    except httpx.TimeoutException as err:
        raise FetchError(Failure.TIMEOUT, f"{uri}: {type(err).__name__}") from None
    except httpx.ConnectError as err:
        raise FetchError(Failure.UNREACHABLE, f"{uri}: {err}") from None
    except (httpx.RemoteProtocolError, httpx.DecodingError) as err:
        raise FetchError(
            Failure.BAD_RESPONSE, f"{uri}: malformed or oversized response: {err}"
        ) from None
    except httpx.TransportError as err:
        raise FetchError(Failure.UNREACHABLE, f"{uri}: {type(err).__name__}: {err}") from None
    except OSError as err:  # the target directory: full, read-only
        raise FetchError(Failure.INVALID, f"writing into {dest}: {err}") from None
    finally:
        for path, _ in staged:
            path.unlink(missing_ok=True)


# --- the command ---------------------------------------------------------------------------


def error_line(failure: Failure, message: str, uri: str) -> str:
    """The one JSON line of a failure (``msg`` starts with the class: the operator quotes it)."""
    doc = {
        "level": "error",
        "logger": log.name,
        "msg": f"fetch failed: {failure}: {message}",
        "failure": str(failure),
        "exitCode": failure.exit_code,
        "uri": uri,
    }
    return orjson.dumps(doc).decode()


def main() -> int:
    """Fetch as the environment says; 0, or the failure's exit code after its line."""
    termination_log = Path(FetchSettings.model_fields["termination_log"].default)
    uri = os.environ.get("MODELOPS_FETCH_URI", "")
    try:
        settings = FetchSettings()  # the fields come from the environment
        termination_log = settings.termination_log
        digests = fetch(settings)
    except ValidationError as err:
        failure, message = (
            Failure.INVALID,
            "; ".join(
                f"MODELOPS_FETCH_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
                for e in err.errors(include_url=False)
            ),
        )
    except FetchError as err:
        failure, message = err.failure, err.message
    else:
        print(
            orjson.dumps(
                {"level": "info", "logger": log.name, "msg": f"fetched {uri}", "sha256": digests}
            ).decode(),
            flush=True,
        )
        return 0
    line = error_line(failure, message, uri)
    print(line, flush=True)
    with contextlib.suppress(OSError):  # outside a pod there is no termination log
        termination_log.write_text(line + "\n")
    return failure.exit_code
