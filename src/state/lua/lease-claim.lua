-- cfnetLeaseClaim: claim a subnet for a cell (compare-and-set), taking it over from an expired
-- victim. The cell itself may already own the subnet: a claim of its own subnet is a re-claim.
-- KEYS[1] cells  KEYS[2] subnets  KEYS[3] expiry
-- ARGV[1] cell  ARGV[2] subnet  ARGV[3] lease JSON  ARGV[4] expiresAt
-- ARGV[5] victim ('' = free subnet)  ARGV[6] now
-- Returns 1 when claimed, 0 when another claim came first or the victim is still alive.
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if owner and owner ~= ARGV[1] then
  if owner ~= ARGV[5] then return 0 end
  local exp = redis.call('ZSCORE', KEYS[3], ARGV[5])
  if exp and tonumber(exp) > tonumber(ARGV[6]) then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[5])
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local prev = cjson.decode(old)
  if prev.subnet ~= ARGV[2] and redis.call('HGET', KEYS[2], prev.subnet) == ARGV[1] then
    redis.call('HDEL', KEYS[2], prev.subnet)
  end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
