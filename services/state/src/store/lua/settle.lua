-- Settles a quota lease: tokens granted but not used go back to every bucket.
-- KEYS[1..n] bucket keys, KEYS[n+1] the lease record
-- ARGV[1] used, ARGV[2] n, ARGV[3..] per bucket emission interval T (µs)
-- Returns { refunded, settled (0/1) }

local n = tonumber(ARGV[2])
local granted = redis.call('GET', KEYS[n + 1])
if not granted then return { 0, 0 } end
redis.call('DEL', KEYS[n + 1])
local refund = math.max(tonumber(granted) - tonumber(ARGV[1]), 0)
if refund == 0 then return { 0, 1 } end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, n do
  local stored = redis.call('GET', KEYS[i])
  if stored then
    local tat = math.max(tonumber(stored) - refund * tonumber(ARGV[2 + i]), now)
    if tat <= now then
      redis.call('DEL', KEYS[i])
    else
      redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1)
    end
  end
end
return { refund, 1 }
