-- cfnetLeaseRenew: extend a cell's lease of the subnet it holds.
-- KEYS[1] cells  KEYS[2] subnets  KEYS[3] expiry
-- ARGV[1] cell  ARGV[2] subnet  ARGV[3] lease JSON  ARGV[4] expiresAt
-- Returns 1 when renewed, 0 when the cell has no lease, -1 when it holds another subnet.
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local prev = cjson.decode(old)
if prev.subnet ~= ARGV[2] then return -1 end
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
