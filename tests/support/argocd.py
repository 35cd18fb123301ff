"""Run the Argo CD health check (deploy/argocd/modeldeployment-health.lua) in a real Lua."""

from __future__ import annotations

from typing import Any

import lupa

from tests.support.repo import ROOT

HEALTH = ROOT / "deploy" / "argocd" / "modeldeployment-health.lua"


def health(obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as Argo CD would compute them for `obj`."""
    lua = lupa.LuaRuntime(unpack_returned_tuples=True)
    # Argo CD hands the script the object as nested Lua tables (lists 1-based)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    result = lua.execute(HEALTH.read_text())
    return result["status"], result["message"]
