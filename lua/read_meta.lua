--[[
read_meta: the first, read-only step of every archive path (end, expiry,
cleanup, delete). The session id routes to the bucket but not to the user;
the meta hash names the user, so the next script can declare the user's keys.

KEYS[1] session meta hash     lr:{b}:s:<sid>:m
ARGV    none
Replies:
  {user, pers, created_ms, absolute_ms, auto}   every field false once archived or deleted
]]
return redis.call('HMGET', KEYS[1], 'user', 'pers', 'created', 'abs', 'auto')
