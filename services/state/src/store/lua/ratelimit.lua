-- Multi-bucket GCRA, all or nothing. Mirrors meshguard_policy::gcra, in
-- microseconds of the Redis clock so every service replica agrees on "now".
--
-- KEYS[1..n]      bucket keys (TAT in µs, expiring when the bucket is full again)
-- KEYS[n+1]       the user's key index (written only when ARGV[4] > 0)
-- KEYS[n+2]       the lease record (mode "lease"; optional)
-- ARGV[1]         mode: "check" (admit `cost` or nothing) or "lease" (take up to `cost`)
-- ARGV[2]         cost (tokens)
-- ARGV[3]         "1" for shadow mode: decide and count, never deny
-- ARGV[4]         how many of the leading keys belong to the user (indexed)
-- ARGV[5]         n, the number of buckets
-- ARGV[6]         lease TTL in ms (mode "lease")
-- ARGV[7..]       per bucket: emission interval T (µs), delay tolerance tau (µs)
-- Returns { admitted (0/1), granted, now_us, per bucket: allowed, remaining, reset_us, retry_us (-1: never) }

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local mode = ARGV[1]
local cost = tonumber(ARGV[2])
local shadow = ARGV[3] == '1'
local nuser = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local lease_ttl = tonumber(ARGV[6])

local tats, ts, taus, fresh = {}, {}, {}, false
for i = 1, n do
  ts[i] = tonumber(ARGV[5 + 2 * i])
  taus[i] = tonumber(ARGV[6 + 2 * i])
  local stored = redis.call('GET', KEYS[i])
  if stored then
    tats[i] = math.max(tonumber(stored), now)
  else
    tats[i] = now
    if i <= nuser then fresh = true end
  end
end

local function remaining(i, tat)
  return math.floor((now + taus[i] - tat) / ts[i])
end

if mode == 'lease' then
  for i = 1, n do
    cost = math.min(cost, math.max(remaining(i, tats[i]), 0))
  end
end

local allowed, retry = {}, {}
local all = true
for i = 1, n do
  if cost * ts[i] > taus[i] then
    allowed[i] = false
    retry[i] = -1
  else
    local allow_at = tats[i] + cost * ts[i] - taus[i]
    allowed[i] = allow_at <= now
    retry[i] = allowed[i] and 0 or (allow_at - now)
  end
  all = all and allowed[i]
end

if all and cost > 0 then
  for i = 1, n do
    tats[i] = tats[i] + cost * ts[i]
    redis.call('SET', KEYS[i], string.format('%.0f', tats[i]),
      'PX', math.floor((tats[i] - now) / 1000) + 1)
  end
end

if nuser > 0 and fresh then
  local index = KEYS[n + 1]
  for i = 1, nuser do redis.call('SADD', index, KEYS[i]) end
  -- The index expires too, never before the buckets it lists (each lives
  -- at most its tolerance): NX sets a first expiry, GT only lengthens it.
  local px = 1
  for i = 1, nuser do px = math.max(px, math.floor(taus[i] / 1000) + 1) end
  redis.call('PEXPIRE', index, px, 'NX')
  redis.call('PEXPIRE', index, px, 'GT')
end

if mode == 'lease' and cost > 0 and KEYS[n + 2] then
  redis.call('SET', KEYS[n + 2], string.format('%.0f', cost), 'PX', lease_ttl)
end

local out = { (all or shadow) and 1 or 0, all and cost or 0, string.format('%.0f', now) }
for i = 1, n do
  table.insert(out, allowed[i] and 1 or 0)
  table.insert(out, math.max(remaining(i, tats[i]), 0))
  table.insert(out, tats[i] - now)
  table.insert(out, retry[i])
end
return out
