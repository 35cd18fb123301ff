"""The content hash of a `docker build`'s inputs, so an image built from the same inputs is reused.

    python3 hack/image_inputs.py DOCKERFILE [EXTRA...]

Hashes the Dockerfile, the files of the build context (the repository root) that its
ignore file lets through (path, executable bit, bytes), and each EXTRA string (build
arguments, the base image's ID). Prints the hex digest. The ignore file is the one BuildKit
reads: <DOCKERFILE>.dockerignore, else the context's .dockerignore; its rules are applied
the way Docker applies them (last match wins, `!` re-includes, a rule that matches a
directory matches everything in it, `**` spans directories).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def parse_rules(text: str) -> list[tuple[bool, str, re.Pattern[str]]]:
    """(re-include?, pattern, regex) for each rule of a .dockerignore text, in order."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negate, pattern, _regex(pattern)))
    return rules


def ignored(path: str, rules: list[tuple[bool, str, re.Pattern[str]]]) -> bool:
    """Whether a context-relative path is left out of the build context."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negate, _, regex in rules:
        if any(regex.match(p) for p in prefixes):
            result = not negate
    return result


def _may_reinclude(directory: str, rules: list[tuple[bool, str, re.Pattern[str]]]) -> bool:
    """Whether a `!` rule could bring back something inside an ignored directory."""
    for negate, pattern, _ in rules:
        if negate:
            literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
            if not literal or literal.startswith(directory + "/") or directory.startswith(literal):
                return True
    return False


def context_files(context: Path, rules: list[tuple[bool, str, re.Pattern[str]]]) -> list[str]:
    """The context-relative paths of the regular files the build context holds, sorted."""
    files = []
    for top, dirs, names in os.walk(context):
        rel_top = os.path.relpath(top, context)
        rel_top = "" if rel_top == "." else rel_top + "/"
        dirs[:] = [
            d for d in dirs if not ignored(rel_top + d, rules) or _may_reinclude(rel_top + d, rules)
        ]
        files += [
            rel_top + n
            for n in names
            if os.path.isfile(os.path.join(top, n)) and not ignored(rel_top + n, rules)
        ]
    return sorted(files)


def inputs_digest(dockerfile: Path, extras: list[str], context: Path = ROOT) -> str:
    own = dockerfile.with_name(dockerfile.name + ".dockerignore")
    ignore = own if own.is_file() else context / ".dockerignore"
    rules = parse_rules(ignore.read_text()) if ignore.is_file() else []
    digest = hashlib.sha256()
    for blob in (dockerfile.read_bytes(), ignore.read_bytes() if ignore.is_file() else b""):
        digest.update(hashlib.sha256(blob).digest())
    for rel in context_files(context, rules):
        path = context / rel
        digest.update(f"{rel}\0{os.access(path, os.X_OK)}\0".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for extra in extras:
        digest.update(f"extra\0{extra}\0".encode())
    return digest.hexdigest()


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    print(inputs_digest(Path(argv[0]).resolve(), argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
