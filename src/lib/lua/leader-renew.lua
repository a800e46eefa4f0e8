-- cfnetLeaderRenew: extend the lease only while it still holds our value.
-- KEYS[1] lease key
-- ARGV[1] our lease value `<fence>:<id>`
-- ARGV[2] lease time (ms)
-- Returns 1 when renewed, 0 when the lease was lost.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
