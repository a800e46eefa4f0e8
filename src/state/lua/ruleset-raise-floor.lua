-- cfnetRaiseFloor: raise a rule set's version floor (the next version written is above it).
-- KEYS[1] rule set
-- ARGV[1] floor
-- Returns 1.
local f = tonumber(redis.call('HGET', KEYS[1], 'floor') or '0')
if tonumber(ARGV[1]) > f then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'floor', ARGV[1], 'floorAt', string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
end
return 1
