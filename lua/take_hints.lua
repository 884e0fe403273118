#!lua
--[[
take_hints: the buckets whose hint has passed, removed as they are read, the
earliest hint still ahead, and the earliest few hints coming within a horizon:
one call per sweep on a single server (all the hint keys), one per node on a
cluster (that node's one hint key).

Removing the due entries in the same call is the first of the sweeper's three
steps (take the hint, scan the bucket, put the bucket's next score back with
lower_hints): a deadline added after the take lands its own hint, one added
before it is seen by the scan, so no deadline is lost between the steps. Due is
strictly score < now, as for the deadline indexes (due_sessions). The hints
coming are only read: the sweeper wakes for them knowing their buckets, and asks
those buckets in the round trip of the take that removes them.
One range read per key gives both its passed hints and those coming; only a key
with none coming within the horizon is asked again, for its next hint beyond.

KEYS[1..n] hint keys   lr:{h<g>}:due (a cluster: one, lr:{h<t>}:due)
ARGV[1] how many buckets to take per key, at most (> 0)
ARGV[2] horizon, ms: report hints with now <= score <= now + horizon (0 or absent: none)
ARGV[3] how many of those to report, at most (the earliest; 0 or absent: none)
Replies:
  {now_ms, next_ms, taken, bucket..., bucket, score, ...}
      next_ms: the earliest score >= now left in any of the keys, -1 when none is;
      taken: how many due buckets follow (as numbers); then (bucket, score) pairs of
      the hints coming, earliest first
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit, horizon, cap = tonumber(ARGV[1]), tonumber(ARGV[2]) or 0, tonumber(ARGV[3]) or 0
local nextMs, taken, coming = -1, {}, {}
local reach, upto = '(' .. now, limit
if horizon > 0 and cap > 0 then reach, upto = now + horizon, limit + cap end
for _, key in ipairs(KEYS) do
  -- One read gives the passed hints and those coming; a key with none coming is asked
  -- for its next hint beyond.
  local head = redis.call('ZRANGEBYSCORE', key, '-inf', reach, 'WITHSCORES', 'LIMIT', 0, upto)
  local due, ahead, mine = {}, nil, 0
  for i = 1, #head, 2 do
    local score = tonumber(head[i + 1])
    if score < now then
      due[#due + 1] = head[i]
    elseif mine < cap then
      ahead, mine = ahead or score, mine + 1
      coming[#coming + 1] = {tonumber(head[i]), score}
    end
  end
  if #due > 0 then
    redis.call('ZREM', key, unpack(due))
    for _, bucket in ipairs(due) do taken[#taken + 1] = tonumber(bucket) end
  end
  if not ahead then
    ahead = tonumber(redis.call('ZRANGEBYSCORE', key, now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)[2])
  end
  if ahead and (nextMs < 0 or ahead < nextMs) then nextMs = ahead end
end
table.sort(coming, function(a, b) return a[2] < b[2] end)
local reply = {now, nextMs, #taken}
for _, bucket in ipairs(taken) do reply[#reply + 1] = bucket end
for i = 1, math.min(cap, #coming) do
  reply[#reply + 1] = coming[i][1]
  reply[#reply + 1] = coming[i][2]
end
return reply
