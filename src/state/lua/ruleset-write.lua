-- cfnetWriteRuleSet: write a cell's rule set if its version is still the expected one, with its
-- tag table and its ASG sets (each stored once for every cell, reference counted), a log entry and
-- a publish to agents.
-- KEYS[1] rule set  KEYS[2] log  KEYS[3] cells  KEYS[4] tag tables  KEYS[5] tag table references
-- KEYS[6] the cell's agent status (read: the version it applied)  KEYS[7] ASG sets  KEYS[8] ASG set
-- references
-- ARGV[1] expected version  ARGV[2] snapshot (without its sets' rules)  ARGV[3] hash
-- ARGV[4] log entry ('' = none)  ARGV[5] log length  ARGV[6] channel  ARGV[7] cell
-- ARGV[8] tags ref ('' = none)  ARGV[9] tag table text ('' unless asked for)
-- ARGV[10] the snapshot's ASG set keys, space separated  ARGV[11] the length of the whole rule set's
-- JSON (sets included: what an agent would be sent)  ARGV[12..] key, rules text pairs of sets the
-- writer believes are not stored yet
-- Returns {1, version} written, {0, current} version mismatch, {2, current} tag table not stored,
-- {3, keys} these sets are not stored and their text was not sent (nothing was written).
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local expected = tonumber(ARGV[1])
if cur ~= expected then return {0, string.format('%d', cur)} end
local ref = ARGV[8]
if ref ~= '' and ARGV[9] == '' and redis.call('HEXISTS', KEYS[4], ref) == 0 then
  return {2, string.format('%d', cur)}
end
-- every set the snapshot names must be stored or sent, before anything is written
local sent = {}
for i = 12, #ARGV, 2 do sent[ARGV[i]] = ARGV[i + 1] end
local newSets, missing = {}, {}
for k in string.gmatch(ARGV[10], '%S+') do
  newSets[k] = true
  if sent[k] == nil and redis.call('HEXISTS', KEYS[7], k) == 0 then missing[#missing + 1] = k end
end
if #missing > 0 then return {3, table.concat(missing, ' ')} end
for k, text in pairs(sent) do
  if newSets[k] and redis.call('HEXISTS', KEYS[7], k) == 0 then redis.call('HSET', KEYS[7], k, text) end
end
local oldSets = {}
for k in string.gmatch(redis.call('HGET', KEYS[1], 'sets') or '', '%S+') do oldSets[k] = true end
for k in pairs(newSets) do
  if not oldSets[k] then redis.call('HINCRBY', KEYS[8], k, 1) end
end
for k in pairs(oldSets) do
  if not newSets[k] and redis.call('HINCRBY', KEYS[8], k, -1) <= 0 then
    redis.call('HDEL', KEYS[8], k)
    redis.call('HDEL', KEYS[7], k)
  end
end
if ARGV[10] == '' then redis.call('HDEL', KEYS[1], 'sets') else redis.call('HSET', KEYS[1], 'sets', ARGV[10]) end
if ref ~= '' and redis.call('HEXISTS', KEYS[4], ref) == 0 then redis.call('HSET', KEYS[4], ref, ARGV[9]) end
local oldRef = redis.call('HGET', KEYS[1], 'tagsRef') or ''
if ref ~= oldRef then
  if ref ~= '' then redis.call('HINCRBY', KEYS[5], ref, 1) end
  if oldRef ~= '' and redis.call('HINCRBY', KEYS[5], oldRef, -1) <= 0 then
    redis.call('HDEL', KEYS[5], oldRef)
    redis.call('HDEL', KEYS[4], oldRef)
  end
  if ref == '' then redis.call('HDEL', KEYS[1], 'tagsRef') else redis.call('HSET', KEYS[1], 'tagsRef', ref) end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = now
if v <= cur then v = cur + 1 end
local floor = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
if v <= floor then v = floor + 1 end
local vs = string.format('%d', v)
redis.call('HSET', KEYS[1], 'version', vs, 'hash', ARGV[3], 'snapshot', ARGV[2], 'size', ARGV[11],
  'updatedAt', string.format('%d', now))
-- behindSince: when the agent's applied version first fell behind a desired one (convergence lag).
-- This write starts it when the agent held the previous version (it was converged, or ahead after a
-- loss of Redis data); an agent already behind stays behind since its earlier start.
local ap = tonumber(redis.call('HGET', KEYS[6], 'appliedVersion') or '0')
if ap >= cur or redis.call('HEXISTS', KEYS[1], 'behindSince') == 0 then
  redis.call('HSET', KEYS[1], 'behindSince', string.format('%d', now))
end
if ARGV[4] ~= '' and cur > 0 then
  redis.call('RPUSH', KEYS[2], string.format('%d', cur) .. ' ' .. vs .. ' ' .. ARGV[4])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
else
  redis.call('DEL', KEYS[2])
end
redis.call('SADD', KEYS[3], ARGV[7])
redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. vs)
return {1, vs}
