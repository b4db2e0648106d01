-- Registers or touches a session a proxy reported, in one step: a new sid
-- is registered with the proxy's first-seen time (the eviction order) and
-- the oldest sessions beyond the maximum are evicted; a sid that was ended
-- is never brought back by a late report.
-- KEYS[1] the user's live sessions (zset sid -> created_ms)
-- KEYS[2] session records (hash sid -> JSON)
-- KEYS[3] the user's last known location (hash: lat, lon, at_ms, sid)
-- KEYS[4] the user's key index
-- KEYS[5] the user's ended sessions (zset sid -> until, Unix s)
-- ARGV[1] user, ARGV[2] sid, ARGV[3] first_seen_ms, ARGV[4] last_seen_ms,
-- ARGV[5] user agent, ARGV[6] ip ("" when unknown), ARGV[7] lat, ARGV[8] lon ("" when unknown),
-- ARGV[9] max sessions, ARGV[10] idle TTL of the user's keys (ms),
-- ARGV[11] how long an evicted session stays ended (s)
-- Returns { state (0 ended, 1 known, 2 new), {evicted sid, ...}, previous location {lat, lon, at_ms, sid} or {} }

local sid = ARGV[2]
local t = redis.call('TIME')
local now_s = tonumber(t[1])
local ttl = tonumber(ARGV[10])
local ended = redis.call('ZSCORE', KEYS[5], sid)
if ended and tonumber(ended) >= now_s then return { 0, {}, {} } end

local state = 1
local raw = redis.call('HGET', KEYS[2], sid)
local record
if raw and redis.call('ZSCORE', KEYS[1], sid) then
  record = cjson.decode(raw)
  if tonumber(ARGV[4]) > (tonumber(record['last_seen_ms']) or 0) then
    record['last_seen_ms'] = tonumber(ARGV[4])
  end
else
  state = 2
  record = { user = ARGV[1], session_id = sid,
             created_ms = tonumber(ARGV[3]), last_seen_ms = tonumber(ARGV[4]) }
  redis.call('ZADD', KEYS[1], ARGV[3], sid)
end
if ARGV[5] ~= '' then record['user_agent'] = ARGV[5] end
if ARGV[6] ~= '' then record['ip'] = ARGV[6] end
local prev = {}
if ARGV[7] ~= '' then
  record['geo'] = { lat = tonumber(ARGV[7]), lon = tonumber(ARGV[8]) }
  local loc = redis.call('HMGET', KEYS[3], 'lat', 'lon', 'at_ms', 'sid')
  if loc[1] then prev = loc end
  redis.call('HSET', KEYS[3], 'lat', ARGV[7], 'lon', ARGV[8], 'at_ms', ARGV[4], 'sid', sid)
  redis.call('PEXPIRE', KEYS[3], ttl)
end
redis.call('HSET', KEYS[2], sid, cjson.encode(record))

local evicted = {}
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[9])
if over > 0 then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, over - 1)
  for _, old in ipairs(oldest) do
    table.insert(evicted, old)
    redis.call('ZADD', KEYS[5], now_s + tonumber(ARGV[11]), old)
    redis.call('EXPIRE', KEYS[5], tonumber(ARGV[11]))
    redis.call('ZREM', KEYS[1], old)
    redis.call('HDEL', KEYS[2], old)
  end
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('SADD', KEYS[4], KEYS[1], KEYS[2], KEYS[3], KEYS[5])
redis.call('PEXPIRE', KEYS[4], ttl)
return { state, evicted, prev }
