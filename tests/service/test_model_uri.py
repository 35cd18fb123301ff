"""The model uri parser: the four kinds, and a clear UriError for everything else (fuzzed)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelops_service.model_uri import ModelUri, UriError, parse_model_uri


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://models/wine/2", ModelUri("s3", "models", "wine/2")),
        ("s3://models", ModelUri("s3", "models", "")),
        ("s3://my.bucket-1/a/b_c/d.e/", ModelUri("s3", "my.bucket-1", "a/b_c/d.e")),
        (
            "https://Files.Example:8443/team/wine/2",
            ModelUri("https", "files.example:8443", "team/wine/2"),
        ),
        ("https://10.245.255.1/m", ModelUri("https", "10.245.255.1", "m")),
        ("pvc://model-store/wine/2", ModelUri("pvc", "model-store", "wine/2")),
        ("/models/wine/2", ModelUri("dir", "", "/models/wine/2")),
    ],
)
def test_the_four_kinds(text, expected):
    uri = parse_model_uri(text)
    assert uri == expected
    assert uri.remote is (expected.scheme != "dir")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "models/wine/2",  # relative: neither a uri nor an absolute dir
        "file:///etc/passwd",
        "http://insecure/m",
        "ftp://h/m",
        "S3://models/x",
        "s3:/models/x",
        "javascript:alert(1)",
        "s3://models/../../etc/passwd",
        "s3://models/wine/./2",
        "s3://models//wine",
        "s3://../etc",
        "s3://Models/x",  # bucket names are lower case
        "s3://ab/x",  # too short for a bucket
        "pvc://claim/a/../../../etc/shadow",
        "pvc://Claim_1/x",
        "https://user:pw@host/m",
        "https://host/m?x=1",
        "https://host/m#frag",
        "https://host/%2e%2e/etc",
        "https://host/a\\..\\b",
        "https://host:99999/m",
        "https://[::1]/m",
        "https://-bad-/m",
        "/models/../etc/passwd",
        "/models/wine 2",
        "/models/\u00e9",
        "s3://models/" + "a/" * 600,
    ],
)
def test_refused_with_a_clear_error(text):
    with pytest.raises(UriError) as err:
        parse_model_uri(text)
    assert str(err.value)


SEGMENT_CHARS = st.sampled_from([*"abcXYZ019._-/\\%?#@:. \x00\n~", "..", "../", "é"])


@settings(max_examples=400, deadline=None)
@given(
    scheme=st.sampled_from(["s3://", "https://", "pvc://", "/", "file://", "", "s3:", "HTTPS://"]),
    rest=st.lists(SEGMENT_CHARS, max_size=30).map("".join),
)
def test_fuzz_either_a_safe_uri_or_uri_error(scheme, rest):
    """Whatever the text, the parser answers a uri whose path holds no traversal, or UriError."""
    try:
        uri = parse_model_uri(scheme + rest)
    except UriError as err:
        message = str(err)
        assert message  # a clear error: never an empty one
        return
    segments = [s for s in uri.path.split("/") if s] if uri.path else []
    assert all(s not in (".", "..") for s in segments)
    assert all(c.isascii() and (c.isalnum() or c in "._-/") for c in uri.path)
    for name in ("model.json", "model.joblib"):
        assert ".." not in uri.object_path(name).split("/")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_any_text(text):
    """Any text: a ModelUri or a UriError, never another exception."""
    try:
        uri = parse_model_uri(text)
    except UriError as err:
        message = str(err)
        assert message
    else:
        assert isinstance(uri, ModelUri)
