-- Argo CD health check of ModelDeployment (modelops.io/v1alpha1). Argo CD runs this with
-- `obj` bound to the object; deploy/argocd/argocd-cm.yaml carries it as the resource
-- customisation `resource.customizations.health.modelops.io_ModelDeployment`.
--   Healthy      Ready=True for the current generation (the asked release serves)
--   Progressing  not yet observed, a canary or rolling update under way
--   Suspended    a rollout the operator holds for spec.paused or `kubectl modelops pause`
--                (Progressing reason RolloutPaused: a paused spec it does not hold, a
--                rolling update already under way, is Progressing)
--   Degraded     a failed canary held (autoRollback: false), phase RolledBack or Degraded
--                (the reason and message of the failure or the condition)
-- The held failure and the pause come first: a new release held after a rollback keeps
-- phase RolledBack, and a held failure paused keeps phase Progressing.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function said(c, fallback)
  if c == nil then
    return fallback
  end
  local text = c.reason or ""
  if c.message ~= nil and c.message ~= "" then
    text = text .. ": " .. c.message
  end
  return text
end

if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the ModelDeployment"
  return hs
end

local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

local phase = obj.status.phase
local ready = condition("Ready")
local degraded = condition("Degraded")
local progressing = condition("Progressing")
local canary = obj.status.canary
if canary ~= nil and canary.held ~= nil then
  hs.status = "Degraded"
  hs.message = "canary held after a failed analysis: " .. said(canary.held, "held")
elseif progressing ~= nil and progressing.reason == "RolloutPaused" then
  hs.status = "Suspended"
  hs.message = said(progressing, "Rollout paused")
elseif phase == "RolledBack" then
  hs.status = "Degraded"
  -- a failure since the rollback (an apply refused) says more than the rollback itself
  if degraded ~= nil and degraded.status == "True" then
    hs.message = said(degraded, "Degraded")
  else
    hs.message = said(ready, "RolledBack")
  end
elseif phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = said(degraded, "Degraded")
elseif phase == "Ready" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = said(ready, "Ready")
else
  hs.status = "Progressing"
  hs.message = said(progressing, "Phase " .. tostring(phase))
end
return hs
