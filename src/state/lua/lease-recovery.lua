-- cfnetLeaseRecovery: the time fresh subnets may be handed out (set once: now when leases exist,
-- now + window on an empty store, so cells can come back for their old subnets first).
-- KEYS[1] recovery marker  KEYS[2] cells
-- ARGV[1] now  ARGV[2] window (ms)
-- Returns that time (ms, as a string).
local v = redis.call('GET', KEYS[1])
if v then return v end
if redis.call('HLEN', KEYS[2]) > 0 then v = ARGV[1] else v = tostring(tonumber(ARGV[1]) + tonumber(ARGV[2])) end
redis.call('SET', KEYS[1], v)
return v
