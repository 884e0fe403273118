--[[
list_quarantined: the earliest quarantined entries of one bucket: dead
deliveries with their bodies, and sweep entries with their failure counts.

KEYS[1] dead deliveries              lr:{b}:outbox:dead   sid -> ms quarantined
KEYS[2] outbox bodies                lr:{b}:outbox:d
KEYS[3] quarantined sweep entries    lr:{b}:quarantine    sid -> ms quarantined
KEYS[4] sweep failure counts         lr:{b}:failures
ARGV[1] how many of each, at most (> 0)
Replies:
  {{sid, ms, body or false, ...}, {sid, ms, failures or false, ...}}
]]
local limit = tonumber(ARGV[1]) - 1
local function listed(zset, hash)
  local out = {}
  local entries = redis.call('ZRANGE', zset, 0, limit, 'WITHSCORES')
  for i = 1, #entries, 2 do
    out[#out + 1] = entries[i]
    out[#out + 1] = entries[i + 1]
    out[#out + 1] = redis.call('HGET', hash, entries[i])
  end
  return out
end
return {listed(KEYS[1], KEYS[2]), listed(KEYS[3], KEYS[4])}
