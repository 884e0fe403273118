#!lua
--[[
sweep_failed: archiving an index entry failed (an error other than Redis being
unreachable). Count it; at the maximum, move the entry out of the deadline
indexes into the quarantine, keeping all its keys, so that the bucket's sweep
moves on to the entries behind it.

KEYS[1] sweep failure counts  lr:{b}:failures     sid -> failures
KEYS[2] quarantine            lr:{b}:quarantine   sid -> ms quarantined
KEYS[3] deadline index        lr:{b}:deadlines
KEYS[4] manual index          lr:{b}:manual
ARGV[1] session id
ARGV[2] failures before quarantine (> 0)
Replies:
  {3, failures}   quarantined by this call
  {1, failures}   counted; the entry stays in its index
]]
local failures = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
if failures < tonumber(ARGV[2]) then return {1, failures} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return {3, failures}
