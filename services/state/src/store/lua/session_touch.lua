-- Records activity on a live session.
-- KEYS as session_register.lua.
-- ARGV[1] sid, ARGV[2] now_ms, ARGV[3] ip ("" to keep), ARGV[4] lat, ARGV[5] lon ("" when unknown),
-- ARGV[6] idle TTL (ms)
-- Returns { live (0/1), previous location {lat, lon, at_ms, sid} or {} }

local sid = ARGV[1]
local raw = redis.call('HGET', KEYS[2], sid)
if not raw or not redis.call('ZSCORE', KEYS[1], sid) then return { 0, {} } end
local record = cjson.decode(raw)
record['last_seen_ms'] = tonumber(ARGV[2])
if ARGV[3] ~= '' then record['ip'] = ARGV[3] end
local prev = {}
if ARGV[4] ~= '' then
  record['geo'] = { lat = tonumber(ARGV[4]), lon = tonumber(ARGV[5]) }
  local loc = redis.call('HMGET', KEYS[3], 'lat', 'lon', 'at_ms', 'sid')
  if loc[1] then prev = loc end
  redis.call('HSET', KEYS[3], 'lat', ARGV[4], 'lon', ARGV[5], 'at_ms', ARGV[2], 'sid', sid)
end
redis.call('HSET', KEYS[2], sid, cjson.encode(record))
-- Activity keeps the user's keys (and their index) alive for another idle TTL.
local ttl = ARGV[6]
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ttl) end
redis.call('PEXPIRE', KEYS[4], ttl, 'NX')
redis.call('PEXPIRE', KEYS[4], ttl, 'GT')
return { 1, prev }
