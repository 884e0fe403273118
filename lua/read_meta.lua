#!lua
--[[
read_meta: the first step of every archive path (end, expiry, cleanup, delete).
The session id routes to the bucket but not to the user; the meta hash names
the user, so the next script can declare the user's keys.

An index entry whose meta hash is gone (its keys were deleted by hand, or
evicted) can never be archived; it is dropped here, so that it cannot hold
up a bucket's sweep, which takes the earliest deadlines first.

An index score is a lower bound of the session's effective deadline (a chat
turn slides the deadline without touching the index). When the session hash
still exists, the entry is raised to the hash's real expiry here, in the same
step, so a sweep that found it due does not find it again until it really is.

KEYS[1] session meta hash     lr:{b}:s:<sid>:m
KEYS[2] deadline index        lr:{b}:deadlines
KEYS[3] manual index          lr:{b}:manual
KEYS[4] session hash          lr:{b}:s:<sid>
ARGV[1] session id
Replies:
  {user, pers, created_ms, absolute_ms, auto, live_deadline_ms}
      every field false once archived or deleted; live_deadline_ms is the live
      session's effective deadline (its entry now scored so), false once it expired
]]
local metaKey, deadlinesKey, manualKey, sessionKey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local meta = redis.call('HMGET', metaKey, 'user', 'pers', 'created', 'abs', 'auto')
if not meta[1] then
  redis.call('ZREM', deadlinesKey, ARGV[1])
  redis.call('ZREM', manualKey, ARGV[1])
  return meta
end
meta[6] = false
if redis.call('EXISTS', sessionKey) == 1 then
  local deadline = redis.pcall('PEXPIRETIME', sessionKey)
  if type(deadline) ~= 'number' or deadline < 0 then
    -- Redis 6.2 lacks PEXPIRETIME, or the hash lost its TTL: the deadline the meta hash
    -- records (the session hash, for a session an older version last wrote).
    local m = redis.call('HMGET', metaKey, 'last', 'idle')
    if not m[2] then m = redis.call('HMGET', sessionKey, 'last', 'idle') end
    deadline = math.min((tonumber(m[1]) or 0) + (tonumber(m[2]) or 0), tonumber(meta[4]) or 0)
  end
  -- XX: an entry moved out (quarantined) stays out; GT: a score is never lowered.
  redis.call('ZADD', deadlinesKey, 'XX', 'GT', deadline, ARGV[1])
  redis.call('ZADD', manualKey, 'XX', 'GT', deadline, ARGV[1])
  meta[6] = deadline
end
return meta
