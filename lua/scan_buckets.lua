#!lua flags=no-writes
--[[
scan_buckets: the earliest score of many buckets' sorted sets, in one call.
A full sweep asks this of every bucket, then calls due_sessions only on the
buckets whose earliest entry has passed: one script call instead of one per
bucket. The keys belong to many hash slots, so it runs on a single server
only: Redis Cluster refuses declared keys of several slots (CROSSSLOT), even
in a script flagged allow-cross-slot-keys, and a cluster sweep keeps one
due_sessions call per bucket, pipelined per node.

With ARGV[1] "sparse" (the outboxes, most of them empty or missing at any
time) each key is first asked whether it exists: an EXISTS costs Redis about
half of a ZRANGE that finds nothing, so a scan of 1024 missing keys holds the
server about 2 ms instead of 4. The deadline indexes, which hold every live
session, are asked directly (there EXISTS first would cost more).

KEYS[1..n] deadline indexes, manual indexes or outboxes   lr:{b}:deadlines, ...
ARGV[1] "sparse" to ask whether each key exists first (optional)
Replies:
  {now_ms, earliest_ms...}   one earliest score per key, in KEYS order; -1 for an
                             empty or missing key
]]
local t = redis.call('TIME')
local reply = {tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)}
local sparse = ARGV[1] == 'sparse'
for i, key in ipairs(KEYS) do
  if sparse and redis.call('EXISTS', key) == 0 then
    reply[i + 1] = -1
  else
    reply[i + 1] = tonumber(redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')[2]) or -1
  end
end
return reply
