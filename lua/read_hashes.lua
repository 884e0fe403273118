#!lua flags=no-writes
--[[
read_hashes: several small hashes of one slot, each in full: hashes with a fixed
set of fields (a session and its meta hash, archived records, and the LuminoraCore
adapter's alias records and standalone moods). Hashes that grow with use are
read by HSCAN steps instead (scan_hash, compat_scan).

KEYS[1..n] hashes whose size does not grow with use (fixed fields); callers send at
           most page_size of them per call, so the reply stays bounded
ARGV       none
Replies:
  one entry per key: {field, value, ...}, empty when the hash does not exist
]]
local reply = {}
for i, key in ipairs(KEYS) do
  reply[i] = redis.call('HGETALL', key)
end
return reply
