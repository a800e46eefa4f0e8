-- cfnetLeaseClaimSingle: a single-address (/32) lease for a router (Silk's single_ip_only) from the
-- reserved first subnet of the overlay, chosen and written in one step so that two concurrent
-- acquires never get one address. Order: the claimed address (the router holds it), else the
-- router's own unexpired single-address lease, else the lowest free address, else the address of
-- the single-address lease that expired first in address order. Cell subnets are never touched:
-- only `<addr>/32` keys of the reserved subnet are looked at.
-- KEYS[1] cells  KEYS[2] subnets  KEYS[3] expiry
-- ARGV[1] cell  ARGV[2] base (the reserved subnet's first address as an integer)
-- ARGV[3] first offset  ARGV[4] last offset  ARGV[5] lease JSON with __SUBNET__ and __MAC__
-- ARGV[6] expiresAt  ARGV[7] now  ARGV[8] claimed address ('' = none)
-- Returns {1, subnet} when granted, {0} when no address is free, {-1, holder} when the claimed
-- address is another router's unexpired lease.
local cell = ARGV[1]
local base = tonumber(ARGV[2])
local now = tonumber(ARGV[7])

local function addr(off)
  local v = base + off
  return string.format('%d.%d.%d.%d/32', math.floor(v / 16777216) % 256, math.floor(v / 65536) % 256,
    math.floor(v / 256) % 256, v % 256)
end

-- free, the cell's own, or held by an expired lease (whose record goes)
local function takeable(s)
  local owner = redis.call('HGET', KEYS[2], s)
  if not owner or owner == cell then return true, owner end
  local exp = redis.call('ZSCORE', KEYS[3], owner)
  if exp and tonumber(exp) > now then return false, owner end
  redis.call('HDEL', KEYS[1], owner)
  redis.call('ZREM', KEYS[3], owner)
  return true, owner
end

local old = redis.call('HGET', KEYS[1], cell)
local prev = old and cjson.decode(old) or nil
local pick = nil
if ARGV[8] ~= '' then
  local ok, holder = takeable(ARGV[8])
  if not ok then return {-1, holder} end
  pick = ARGV[8]
elseif prev and prev.kind == 'single-ip' and redis.call('HGET', KEYS[2], prev.subnet) == cell then
  pick = prev.subnet
end
if not pick then
  for off = tonumber(ARGV[3]), tonumber(ARGV[4]) do
    local s = addr(off)
    if not redis.call('HGET', KEYS[2], s) then pick = s break end
  end
end
if not pick then
  for off = tonumber(ARGV[3]), tonumber(ARGV[4]) do
    local s = addr(off)
    if takeable(s) then pick = s break end
  end
end
if not pick then return {0} end
if prev and prev.subnet ~= pick and redis.call('HGET', KEYS[2], prev.subnet) == cell then
  redis.call('HDEL', KEYS[2], prev.subnet)
end
local a, b, c, d = string.match(pick, '^(%d+)%.(%d+)%.(%d+)%.(%d+)/32$')
local mac = string.format('ee:ee:%02x:%02x:%02x:%02x', tonumber(a), tonumber(b), tonumber(c), tonumber(d))
local json = string.gsub(string.gsub(ARGV[5], '__SUBNET__', pick), '__MAC__', mac)
redis.call('HSET', KEYS[2], pick, cell)
redis.call('HSET', KEYS[1], cell, json)
redis.call('ZADD', KEYS[3], ARGV[6], cell)
return {1, pick}
