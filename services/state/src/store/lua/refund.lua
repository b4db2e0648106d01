-- Gives tokens back to buckets (the second phase of a decision that spans two
-- cluster slots was refused), optionally shrinking a lease record.
-- KEYS[1..n] bucket keys, KEYS[n+1] a lease record (when ARGV[3 + n] ~= "")
-- ARGV[1] tokens, ARGV[2] n, ARGV[3..2+n] per bucket emission interval T (µs),
-- ARGV[3+n] the lease's new grant ("" for none)

local n = tonumber(ARGV[2])
local tokens = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, n do
  local stored = redis.call('GET', KEYS[i])
  if stored then
    local tat = math.max(tonumber(stored) - tokens * tonumber(ARGV[2 + i]), now)
    if tat <= now then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1)
    end
  end
end
if ARGV[3 + n] ~= '' then
  redis.call('SET', KEYS[n + 1], ARGV[3 + n], 'KEEPTTL')
end
return 1
