"""How the image tests run the images (the charts' restricted runtime) and what they check
inside them (every module of the image's own code loads from valid bytecode)."""

# The restricted runtime of the charts' pods: read-only root, non-root user, no capabilities.
RESTRICTED = (
    "--read-only",
    "--user",
    "10001:10001",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
)

# `find` arguments that print every file the running user cannot read, and every directory
# it cannot enter: COPY keeps the checkout's modes, which a umask of 027 makes root's only.
UNREADABLE = ("(", "!", "-readable", "-o", "-type", "d", "!", "-executable", ")", "-print")

# Every module the image's own code imports (under /opt) loads from valid bytecode: the .pyc
# exists and matches its source the way the importer checks (timestamp or hash based).
BYTECODE_CHECK = """
import importlib, importlib.util, os, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
checked, bad = 0, []
for mod in list(sys.modules.values()):
    src = getattr(mod, "__file__", None) or ""
    if not (src.startswith("/opt/") and src.endswith(".py")):
        continue
    checked += 1
    try:
        with open(mod.__cached__, "rb") as f:
            head = f.read(16)
    except OSError:
        bad.append("no bytecode: " + src)
        continue
    st = os.stat(src)
    flags = int.from_bytes(head[4:8], "little")
    if flags & 1:
        with open(src, "rb") as f:
            ok = head[8:16] == importlib.util.source_hash(f.read())
    else:
        ok = head[8:16] == (int(st.st_mtime) & 0xFFFFFFFF).to_bytes(4, "little") + (
            st.st_size & 0xFFFFFFFF).to_bytes(4, "little")
    if head[:4] != importlib.util.MAGIC_NUMBER or not ok:
        bad.append("stale bytecode: " + src)
print(checked)
print("\\n".join(bad))
"""
