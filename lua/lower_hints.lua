#!lua
--[[
lower_hints: lower buckets' entries in one due-bucket hint key (never raise them).

A hint entry is a lower bound of the earliest score in its bucket's deadline
index: the sweeper reads only the buckets whose hint has passed (take_hints).
On a single server create_session.lua lowers the hint itself, in the same
script. On a cluster, where a script may not declare keys of two slots, the
writer calls this right after the script that added the deadline (same
pipeline, not atomic; the hint key of the node serving the bucket), with a
score relative to this server's clock less a margin for another node's clock
(a reshard may have moved the bucket meanwhile). The sweeper calls it with the absolute next scores it read. ZADD
LT adds an absent bucket and lowers a present one, so of two racing writers the
earlier deadline wins, and a write that lands after the sweeper took the
bucket's entry is kept.

KEYS[1] a hint key                          lr:{h<g>}:due (a cluster: lr:{h<t>}:due)
ARGV[1] "rel": scores are milliseconds from now on this server's clock;
        "abs": scores are absolute milliseconds
ARGV[2..] score, bucket, score, bucket, ... (buckets of this key's group)
Replies:
  the number of entries added (ZADD's reply)
]]
local base = 0
if ARGV[1] == 'rel' then
  local t = redis.call('TIME')
  base = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local args = {}
for i = 2, #ARGV, 2 do
  args[#args + 1] = base + tonumber(ARGV[i])
  args[#args + 1] = ARGV[i + 1]
end
if #args == 0 then return 0 end
return redis.call('ZADD', KEYS[1], 'LT', unpack(args))
