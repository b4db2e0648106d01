-- Reads the revocation feed after a cursor, or a snapshot when the cursor is
-- older than what the stream still holds (or unknown to it), in one atomic step
-- so no change falls between the check and the read.
-- KEYS as revoke.lua. ARGV[1] cursor ("0" asks for a snapshot), ARGV[2] page size,
-- ARGV[3] seconds a revoked token stays after its exp (as revoke.lua).
-- Returns { "changes", last id, more (0/1), id1, {fields}, id2, {fields}, ... }
--      or { "snapshot", last id, now_s, {token members/scores}, {user hash}, {session members/scores} }

local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if not ms then
    ms = string.match(id, '^(%d+)$')
    seq = '0'
  end
  if not ms then return nil end
  return { tonumber(ms), tonumber(seq) }
end
local function less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

local last = '0-0'
if redis.call('EXISTS', KEYS[1]) == 1 then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
end
local trimmed = redis.call('GET', KEYS[5]) or '0-0'

local cursor = parse(ARGV[1])
local snapshot = cursor == nil or ARGV[1] == '0'
  or less(cursor, parse(trimmed)) or less(parse(last), cursor)
if not snapshot then
  local count = tonumber(ARGV[2])
  local entries = redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+', 'COUNT', count + 1)
  local more = 0
  if #entries > count then
    more = 1
    table.remove(entries)
  end
  local out = { 'changes', last, more }
  for _, e in ipairs(entries) do
    table.insert(out, e[1])
    table.insert(out, e[2])
  end
  return out
end

local t = redis.call('TIME')
local now_s = tonumber(t[1])
return { 'snapshot', last, now_s,
  redis.call('ZRANGEBYSCORE', KEYS[2], now_s - tonumber(ARGV[3]), '+inf', 'WITHSCORES'),
  redis.call('HGETALL', KEYS[3]),
  redis.call('ZRANGEBYSCORE', KEYS[4], now_s, '+inf', 'WITHSCORES') }
