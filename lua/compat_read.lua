#!lua flags=no-writes
--[[
compat_read: every field of several small hashes of one slot, in one reply. Only
for hashes with a fixed set of fields (an alias record, a standalone mood, a
session's meta hash); hashes that grow with use are read by compat_scan.

KEYS[1..n] fixed-field hashes e.g. lr:{c<hhhh>}:lc:s:<caller id>
ARGV none
Replies:
  {{field, value, ...}, ...}  one flat list per key, in KEYS order ({} when missing)
]]
local reply = {}
for i, key in ipairs(KEYS) do reply[i] = redis.call('HGETALL', key) end
return reply
