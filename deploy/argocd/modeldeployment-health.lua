-- Argo CD health check of ModelDeployment (modelops.io/v1alpha1). Argo CD runs this with
-- `obj` bound to the object; deploy/argocd/argocd-cm.yaml carries it as the resource
-- customisation `resource.customizations.health.modelops.io_ModelDeployment`.
--   Healthy      Ready=True for the current generation (the asked release serves)
--   Progressing  not yet observed, a canary or rolling update under way
--   Suspended    a rollout held by spec.paused or `kubectl modelops pause`
--   Degraded     phase RolledBack or Degraded (the reason and message of the condition)
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
if phase == "RolledBack" then
  hs.status = "Degraded"
  hs.message = said(ready, "RolledBack")
elseif phase == "Degraded" then
  hs.status = "Degraded"
  hs.message = said(condition("Degraded"), "Degraded")
elseif phase == "Ready" and ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = said(ready, "Ready")
elseif (obj.spec ~= nil and obj.spec.paused) or obj.status.pause ~= nil then
  hs.status = "Suspended"
  hs.message = said(condition("Progressing"), "Rollout paused")
else
  hs.status = "Progressing"
  hs.message = said(condition("Progressing"), "Phase " .. tostring(phase))
end
return hs
