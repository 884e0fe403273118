#!lua flags=no-writes
--[[
read_hashes: several small hashes of one slot (a user hash, a session and its
meta hash, archived records), each in full.

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
