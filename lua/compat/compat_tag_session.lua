#!lua
--[[
compat_tag_session: note the caller-chosen id of a session in its meta hash,
so that get_expired_sessions can answer in the caller's ids. The meta hash
lives until the session is archived, exactly as long as the answer matters.

KEYS[1] session meta hash     lr:{b}:s:<sid>:m
ARGV[1] the caller's session id
Replies:
  {1}   noted
  {0}   the session is gone; nothing written
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
redis.call('HSET', KEYS[1], 'lcid', ARGV[1])
return {1}
