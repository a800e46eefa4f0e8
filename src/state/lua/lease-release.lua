-- cfnetLeaseRelease: give a cell's subnet back, remembering it as released.
-- KEYS[1] cells  KEYS[2] subnets  KEYS[3] expiry  KEYS[4] released
-- ARGV[1] cell  ARGV[2] now
-- Returns 1 when released, 0 when the cell had no lease.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local prev = cjson.decode(old)
if redis.call('HGET', KEYS[2], prev.subnet) == ARGV[1] then redis.call('HDEL', KEYS[2], prev.subnet) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], cjson.encode({cellId = ARGV[1], subnet = prev.subnet, releasedAt = tonumber(ARGV[2])}))
return 1
