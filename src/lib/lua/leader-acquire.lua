-- cfnetLeaderAcquire: take the leadership lease if nobody holds it; every new leader gets a larger
-- fencing token (the lease value is what fenced writes compare against).
-- KEYS[1] lease key
-- KEYS[2] fencing counter
-- ARGV[1] replica id
-- ARGV[2] lease time (ms)
-- Returns the lease value `<fence>:<id>`, or nil when the lease is held.
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local fence = redis.call('INCR', KEYS[2])
local value = string.format('%d', fence) .. ':' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', tonumber(ARGV[2]))
return value
