#!lua flags=no-writes
--[[
compat_read: every field of several hashes of one slot, in one reply.

KEYS[1..n] hashes             e.g. lr:{b}:u:<uid>:facts and lr:{b}:u:<uid>:lc:f
ARGV none
Replies:
  {{field, value, ...}, ...}  one flat list per key, in KEYS order ({} when missing)
]]
local reply = {}
for i, key in ipairs(KEYS) do reply[i] = redis.call('HGETALL', key) end
return reply
