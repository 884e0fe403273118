--[[
read_meta: the first step of every archive path (end, expiry, cleanup, delete).
The session id routes to the bucket but not to the user; the meta hash names
the user, so the next script can declare the user's keys.

An index entry whose meta hash is gone (its keys were deleted by hand, or
evicted) can never be archived; it is dropped here, so that it cannot hold
up a bucket's sweep, which takes the earliest deadlines first.

KEYS[1] session meta hash     lr:{b}:s:<sid>:m
KEYS[2] deadline index        lr:{b}:deadlines
KEYS[3] manual index          lr:{b}:manual
ARGV[1] session id
Replies:
  {user, pers, created_ms, absolute_ms, auto}   every field false once archived or deleted
]]
local meta = redis.call('HMGET', KEYS[1], 'user', 'pers', 'created', 'abs', 'auto')
if not meta[1] then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return meta
