-- cfnetReportStatus: record what a cell's agent reports it applied, and move the cell's
-- behindSince on when the agent advanced but is still behind (see ruleset-write.lua).
-- KEYS[1] agent status  KEYS[2] rule set  KEYS[3] log
-- ARGV[1] applied version  ARGV[2] applied at (agent clock, ms)  ARGV[3] reported at (ms)
-- ARGV[4] error  ARGV[5] the agent's report interval (ms, 0 = unknown)
-- ARGV[6] overlay health (`expected missing held`, '' = not reported)  ARGV[7] dry run ('1', '0', '')
-- Every field is written on every report, so what an older agent does not send is cleared.
-- Returns 1.
local prev = tonumber(redis.call('HGET', KEYS[1], 'appliedVersion') or '-1')
redis.call('HSET', KEYS[1], 'appliedVersion', ARGV[1], 'appliedAt', ARGV[2], 'reportedAt', ARGV[3],
  'error', ARGV[4], 'intervalMs', ARGV[5], 'overlay', ARGV[6] or '', 'dryRun', ARGV[7] or '')
local ap = tonumber(ARGV[1])
local desired = tonumber(redis.call('HGET', KEYS[2], 'version') or '0')
if ap == prev or ap <= 0 or ap >= desired then return 1 end
-- The agent is behind since the first version written above the one it now holds. A version is
-- the Redis time (ms) of its write, or just above the previous version: it stands for its write
-- time, bounded by the write time of the current version.
local written = tonumber(redis.call('HGET', KEYS[2], 'updatedAt') or '0')
local old = tonumber(redis.call('HGET', KEYS[2], 'behindSince') or '0')
for _, line in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local to = tonumber(string.match(line, '^%d+ (%d+) ') or '')
  if to and to > ap then
    local since = math.max(old, math.min(to, written))
    if since ~= old then redis.call('HSET', KEYS[2], 'behindSince', string.format('%d', since)) end
    break
  end
end
return 1
