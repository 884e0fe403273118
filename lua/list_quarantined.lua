#!lua flags=no-writes
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
local deadKey, bodiesKey, quarantineKey, failuresKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit = tonumber(ARGV[1]) - 1
local dead, stuck = {}, {}
local entries = redis.call('ZRANGE', deadKey, 0, limit, 'WITHSCORES')
for i = 1, #entries, 2 do
  dead[#dead + 1] = entries[i]
  dead[#dead + 1] = entries[i + 1]
  dead[#dead + 1] = redis.call('HGET', bodiesKey, entries[i])
end
entries = redis.call('ZRANGE', quarantineKey, 0, limit, 'WITHSCORES')
for i = 1, #entries, 2 do
  stuck[#stuck + 1] = entries[i]
  stuck[#stuck + 1] = entries[i + 1]
  stuck[#stuck + 1] = redis.call('HGET', failuresKey, entries[i])
end
return {dead, stuck}
