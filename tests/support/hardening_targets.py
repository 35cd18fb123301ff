"""The real services the hardening tests start (tests/hardening/conftest.py) and fuzz."""

# Started the way the chart starts them (declared sha256), one per task and range policy:
# wine/1 (classifier) with the default settings (out-of-range values flagged), diabetes/1
# (regressor) rejecting out-of-range values.
TARGETS = {
    "wine-flag": ("wine", "1", {}),
    "diabetes-reject": ("diabetes", "1", {"MODELOPS_RANGE_POLICY": "reject"}),
}
