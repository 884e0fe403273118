#!lua
--[[
lower_hints: lower buckets' entries in one due-bucket hint key (never raise them).

A hint entry is a lower bound of the earliest score in its bucket's deadline
index: the sweeper reads only the buckets whose hint has passed (take_hints).
Writers that add a deadline call this right after the script that added it
(same pipeline, not atomic: the hint key is of another slot on a cluster). On a
single server they pass the index and the member, and the hint gets the
member's exact score; on a cluster, where a script may not declare keys of two
slots, a score relative to this server's clock less a margin for the clocks of
other nodes. The sweeper calls it with the absolute next scores it read. ZADD
LT adds an absent bucket and lowers a present one, so of two racing writers the
earlier deadline wins, and a write that lands after the sweeper took the
bucket's entry is kept.

KEYS[1] a hint key                          lr:{h<g>}:due
KEYS[2] with "idx" only: a deadline index   lr:{b}:deadlines (same server, single server)
ARGV[1] "rel": scores are milliseconds from now on this server's clock;
        "abs": scores are absolute milliseconds;
        "idx": ARGV[2] is a member of KEYS[2], ARGV[3] its bucket: the hint gets
               the member's score (nothing when it has none)
ARGV[2..] score, bucket, score, bucket, ... (buckets of this key's group)
Replies:
  the number of entries added (ZADD's reply)
]]
if ARGV[1] == 'idx' then
  local score = redis.call('ZSCORE', KEYS[2], ARGV[2])
  if not score then return 0 end
  return redis.call('ZADD', KEYS[1], 'LT', score, ARGV[3])
end
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
