#!lua
--[[
lg_tag_session: note the LangGraph thread id of a session in its meta hash, so
that export_user and erase_user find the thread's alias and run records from the
user's own keys. Written before the alias names the session: every alias that
names a live session is found this way.

KEYS[1] session meta hash     lr:{b}:s:<sid>:m
ARGV[1] the thread id
Replies:
  {1}   noted
  {0}   the session is gone; nothing written
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
redis.call('HSET', KEYS[1], 'lgid', ARGV[1])
return {1}
