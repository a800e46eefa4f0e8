-- cfnetLeaderRelease: delete the lease only if it holds our value (graceful stop).
-- KEYS[1] lease key
-- ARGV[1] our lease value `<fence>:<id>`
-- Returns 1 when released, 0 when it was not ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
