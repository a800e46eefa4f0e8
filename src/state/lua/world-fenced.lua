-- cfnetFenced: a batch of world writes, applied only while the leadership lease holds the leader's
-- fencing value (a deposed leader cannot overwrite its successor's world). Called with a variable
-- number of keys.
-- KEYS[1] leadership lease key
-- KEYS[2..] the keys the ops write
-- ARGV[1] the leader's lease value
-- ARGV[2..] ops of 4 arguments each: op code (hset hdel hincr del sadd srem set settime),
--           index into KEYS, field, value
-- Returns 1 when applied, 0 when fenced off.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local n = #ARGV
local i = 2
while i <= n do
  local op = ARGV[i]
  local k = KEYS[tonumber(ARGV[i + 1])]
  local f = ARGV[i + 2]
  local v = ARGV[i + 3]
  if op == 'hset' then redis.call('HSET', k, f, v)
  elseif op == 'hdel' then redis.call('HDEL', k, f)
  elseif op == 'hincr' then redis.call('HINCRBY', k, f, 1)
  elseif op == 'del' then redis.call('DEL', k)
  elseif op == 'sadd' then redis.call('SADD', k, f)
  elseif op == 'srem' then redis.call('SREM', k, f)
  elseif op == 'set' then redis.call('SET', k, v)
  elseif op == 'settime' then
    local t = redis.call('TIME')
    redis.call('SET', k, string.format('%d', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
  end
  i = i + 4
end
return 1
