#!lua
--[[
take_hints: the buckets whose hint has passed, removed as they are read, and the
earliest hint still ahead: one call per sweep on a single server (all the hint
keys), one per node on a cluster (that node's one hint key).

Removing the due entries in the same call is the first of the sweeper's three
steps (take the hint, scan the bucket, put the bucket's next score back with
lower_hints): a deadline added after the take lands its own hint, one added
before it is seen by the scan, so no deadline is lost between the steps. Due is
strictly score < now, as for the deadline indexes (due_sessions).

KEYS[1..n] hint keys   lr:{h<g>}:due (a cluster: one, lr:{h<t>}:due)
ARGV[1] how many buckets to take per key, at most (> 0)
Replies:
  {now_ms, next_ms, bucket...}   next_ms: the earliest score >= now left in any of
                                 the keys, -1 when none is; buckets as numbers
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local reply = {now, -1}
local limit = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  local due = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. now, 'LIMIT', 0, limit)
  if #due > 0 then
    redis.call('ZREM', key, unpack(due))
    for _, bucket in ipairs(due) do reply[#reply + 1] = tonumber(bucket) end
  end
  local ahead = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  local score = tonumber(ahead[2])
  if score and (reply[2] < 0 or score < reply[2]) then reply[2] = score end
end
return reply
