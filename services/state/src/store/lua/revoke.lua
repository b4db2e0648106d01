-- Records a revocation and appends it to the feed stream, atomically.
-- KEYS[1] feed stream, KEYS[2] revoked tokens (zset "iss\njti" -> exp),
-- KEYS[3] user cutoffs (hash sub -> not_before), KEYS[4] revoked sessions (zset "sub\nsid" -> until),
-- KEYS[5] the id of the newest entry trimmed from the stream (a cursor at or
-- after it has missed nothing)
-- ARGV[1] kind (token|user|session), ARGV[2] stream max length,
-- token: ARGV[3] iss, ARGV[4] jti, ARGV[5] exp, ARGV[6] seconds a token stays after
--   its exp (the largest clock skew a plugin may allow: it accepts the token that long)
-- user: ARGV[3] sub
-- session: ARGV[3] sub, ARGV[4] session id, ARGV[5] until
-- Returns { stream id, at_ms, not_before (user) or 0 }

local t = redis.call('TIME')
local now_s = tonumber(t[1])
local at_ms = string.format('%.0f', now_s * 1000 + math.floor(tonumber(t[2]) / 1000))
local kind = ARGV[1]
local maxlen = ARGV[2]
local id
local nb = 0
if kind == 'token' then
  redis.call('ZADD', KEYS[2], ARGV[5], ARGV[3] .. '\n' .. ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now_s - tonumber(ARGV[6])))
  id = redis.call('XADD', KEYS[1], '*',
    'kind', 'token', 'iss', ARGV[3], 'jti', ARGV[4], 'exp', ARGV[5], 'at_ms', at_ms)
elseif kind == 'user' then
  -- A cutoff never moves back: a second emergency revocation in the same
  -- second keeps the same value.
  local old = tonumber(redis.call('HGET', KEYS[3], ARGV[3]) or '0')
  nb = math.max(old, now_s)
  redis.call('HSET', KEYS[3], ARGV[3], nb)
  id = redis.call('XADD', KEYS[1], '*',
    'kind', 'user', 'sub', ARGV[3], 'not_before', nb, 'at_ms', at_ms)
elseif kind == 'session' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[3] .. '\n' .. ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. now_s)
  id = redis.call('XADD', KEYS[1], '*',
    'kind', 'session', 'sub', ARGV[3], 'session_id', ARGV[4], 'until', ARGV[5], 'at_ms', at_ms)
else
  return redis.error_reply('unknown revocation kind')
end
-- Trim by hand rather than XADD MAXLEN: the feed must know the newest
-- trimmed id, and XINFO's max-deleted-entry-id ignores trimming.
local over = redis.call('XLEN', KEYS[1]) - tonumber(maxlen)
if over > 0 then
  local old = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', over)
  for _, e in ipairs(old) do redis.call('XDEL', KEYS[1], e[1]) end
  redis.call('SET', KEYS[5], old[#old][1])
end
return { id, at_ms, nb }
