"""The fetcher's credentials from a mounted Secret's files: which auth each key set gives."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

from modelops_service.fetch import Credentials, Failure, FetchError, https_auth


def secret(tmp_path: Path, **keys: str) -> Path:
    for key, value in keys.items():
        (tmp_path / key).write_text(value)
    return tmp_path


def header(auth: httpx.Auth | None) -> str | None:
    if auth is None:
        return None
    request = next(auth.auth_flow(httpx.Request("GET", "https://files.example/m")))
    return request.headers.get("Authorization")


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"token": "abc.DEF-123_~+/=="}, "Bearer abc.DEF-123_~+/=="),
        ({"token": "abc\n"}, "Bearer abc"),
        ({"username": "u", "password": "p w:ö\n"},
         "Basic " + base64.b64encode("u:p w:ö".encode()).decode()),
        ({}, None),  # no Secret mounted: anonymous
        ({"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}, None),  # an S3 Secret
    ],
    ids=["bearer", "bearer-newline", "basic", "none", "s3-keys-only"],
)  # fmt: skip
def test_https_auth_from_the_secrets_keys(keys, expected, tmp_path):
    assert header(https_auth(secret(tmp_path, **keys))) == expected


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"token": "t", "username": "u", "password": "p"}, "not both"),
        ({"username": "u"}, "password is missing"),
        ({"password": "p"}, "username is missing"),
        ({"username": "a:b", "password": "p"}, "':'"),
        ({"token": "two words"}, "bearer token"),
        ({"token": "line\nbreak"}, "bearer token"),
        ({"token": ""}, "bearer token"),
    ],
)
def test_https_auth_refuses_a_secret_it_cannot_send(keys, words, tmp_path):
    with pytest.raises(FetchError) as err:
        https_auth(secret(tmp_path, **keys))
    assert err.value.failure is Failure.INVALID
    assert words in err.value.message


def test_a_secret_file_that_is_not_text_is_invalid(tmp_path):
    (tmp_path / "token").write_bytes(b"\xff\xfe")
    with pytest.raises(FetchError) as err:
        https_auth(tmp_path)
    assert err.value.failure is Failure.INVALID


def test_s3_keys_need_both_files(tmp_path):
    assert Credentials.read(secret(tmp_path, AWS_ACCESS_KEY_ID="k")) is None
    keys = Credentials.read(secret(tmp_path, AWS_SECRET_ACCESS_KEY="s\n", AWS_SESSION_TOKEN="t"))
    assert keys == Credentials("k", "s", "t")
