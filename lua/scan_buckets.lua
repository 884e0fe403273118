#!lua flags=no-writes
--[[
scan_buckets: the earliest score of many buckets' sorted sets, in one call.
A full sweep asks this of every bucket, then calls due_sessions only on the
buckets whose earliest entry has passed: one script call instead of one per
bucket. The keys belong to many hash slots, so it runs on a single server
only: Redis Cluster refuses declared keys of several slots (CROSSSLOT), even
in a script flagged allow-cross-slot-keys, and a cluster sweep keeps one
due_sessions call per bucket, pipelined per node.

KEYS[1..n] deadline indexes, manual indexes or outboxes   lr:{b}:deadlines, ...
ARGV none
Replies:
  {now_ms, earliest_ms...}   one earliest score per key, in KEYS order; -1 for an
                             empty or missing key
]]
local t = redis.call('TIME')
local reply = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
for i, key in ipairs(KEYS) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  reply[i + 1] = tonumber(first[2]) or -1
end
return reply
