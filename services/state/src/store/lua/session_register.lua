-- Registers a login and evicts the oldest sessions beyond the maximum.
-- KEYS[1] the user's live sessions (zset sid -> created_ms)
-- KEYS[2] session records (hash sid -> JSON)
-- KEYS[3] the user's last known location (hash: lat, lon, at_ms, sid)
-- KEYS[4] the user's key index
-- ARGV[1] sid, ARGV[2] created_ms, ARGV[3] session JSON, ARGV[4] max sessions,
-- ARGV[5] lat, ARGV[6] lon ("" when unknown), ARGV[7] idle TTL (ms)
-- Returns { {evicted sid, evicted JSON, ...}, previous location {lat, lon, at_ms, sid} or {} }

local sid = ARGV[1]
local prev = {}
if ARGV[5] ~= '' then
  local loc = redis.call('HMGET', KEYS[3], 'lat', 'lon', 'at_ms', 'sid')
  if loc[1] then prev = loc end
  redis.call('HSET', KEYS[3], 'lat', ARGV[5], 'lon', ARGV[6], 'at_ms', ARGV[2], 'sid', sid)
end
redis.call('ZADD', KEYS[1], ARGV[2], sid)
redis.call('HSET', KEYS[2], sid, ARGV[3])

local evicted = {}
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, over - 1)
  for _, old in ipairs(oldest) do
    table.insert(evicted, old)
    table.insert(evicted, redis.call('HGET', KEYS[2], old) or '')
    redis.call('ZREM', KEYS[1], old)
    redis.call('HDEL', KEYS[2], old)
  end
end
redis.call('SADD', KEYS[4], KEYS[1], KEYS[2], KEYS[3])
-- Nothing personal lives forever: the user's keys expire after the idle TTL
-- without a write, and the index never before what it lists (NX sets a
-- first expiry, GT only ever lengthens it).
local ttl = ARGV[7]
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
redis.call('PEXPIRE', KEYS[4], ttl, 'NX')
redis.call('PEXPIRE', KEYS[4], ttl, 'GT')
return { evicted, prev }
