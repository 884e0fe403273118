#!lua
--[[
lg_unalias: forget which session holds a LangGraph thread, if it is still the
one given (a newer session of the thread keeps its alias).

KEYS[1] thread alias hash     lr:{c<hhhh>}:lg:t:<thread id>   sid, user
ARGV[1] session id
Replies:
  {1}     removed
  {0}     the alias names another session, or none; nothing written
]]
local aliasKey = KEYS[1]
if redis.call('HGET', aliasKey, 'sid') ~= ARGV[1] then return {0} end
redis.call('DEL', aliasKey)
return {1}
