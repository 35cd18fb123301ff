"""Repository-wide pytest configuration; each tier keeps its own fixtures."""

# The test rig: session fixture `cluster` (a real control plane with KWOK nodes)
# and `namespace` (a fresh namespace per test). See tests/rig/.
pytest_plugins = ["tests.rig.fixtures"]
