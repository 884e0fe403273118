#!lua
--[[
take_hints: the buckets whose hint has passed, removed as they are read, the
earliest hint still ahead, and the earliest few hints of each key coming within
a horizon: one call per sweep on a single server (all the hint keys), one per
node on a cluster (that node's one hint key).

Removing the due entries in the same call is the first of the sweeper's three
steps (take the hint, scan the bucket, put the bucket's next score back with
lower_hints): a deadline added after the take lands its own hint, one added
before it is seen by the scan, so no deadline is lost between the steps. Due is
strictly score < now, as for the deadline indexes (due_sessions). The hints
coming are only read: the sweeper wakes for them knowing their buckets, and asks
those buckets in the round trip of the take that removes them.
Two range reads per key: the passed hints without their scores, then the
earliest ceil(cap / #KEYS) hints coming, with theirs (a score costs Redis more
to hand to Lua than the read itself; the earliest hint of all is always among
them). With a horizon nothing beyond it is read: the sweeper takes again within
it (every interval; the horizon is two), so a later hint is seen coming before
it passes. Without one, each key is asked for its next hint instead.

KEYS[1..n] hint keys   lr:{h<g>}:due (a cluster: one, lr:{h<t>}:due)
ARGV[1] how many buckets to take per key, at most (> 0)
ARGV[2] horizon, ms: report hints with now <= score <= now + horizon (0 or absent: none)
ARGV[3] how many of those to report, about (0 or absent: none); each key reports
        its earliest ceil(ARGV[3] / n)
Replies:
  {now_ms, next_ms, taken, bucket..., bucket, score, ...}
      next_ms: the earliest score >= now left in any of the keys (with a horizon:
      within it), -1 when none is;
      taken: how many due buckets follow (as numbers); then (bucket, score) pairs of
      the hints coming, in no set order
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, horizon, cap = tonumber(ARGV[1]), tonumber(ARGV[2]) or 0, tonumber(ARGV[3]) or 0
local each = 0
if horizon > 0 and cap > 0 then each = math.ceil(cap / #KEYS) end
local nextMs, taken, coming = -1, {}, {}
for _, key in ipairs(KEYS) do
  local due = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. now, 'LIMIT', 0, limit)
  if #due > 0 then
    redis.call('ZREM', key, unpack(due))
    for _, bucket in ipairs(due) do taken[#taken + 1] = tonumber(bucket) end
  end
  local ahead
  if each > 0 then
    local head = redis.call('ZRANGEBYSCORE', key, now, now + horizon, 'WITHSCORES', 'LIMIT', 0, each)
    for i = 1, #head, 2 do
      coming[#coming + 1] = tonumber(head[i])
      coming[#coming + 1] = tonumber(head[i + 1])
    end
    ahead = tonumber(head[2])
  else
    ahead = tonumber(redis.call('ZRANGEBYSCORE', key, now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2])
  end
  if ahead and (nextMs < 0 or ahead < nextMs) then nextMs = ahead end
end
local reply = {now, nextMs, #taken}
for _, bucket in ipairs(taken) do reply[#reply + 1] = bucket end
for _, value in ipairs(coming) do reply[#reply + 1] = value end
return reply
