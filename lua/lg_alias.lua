#!lua
--[[
lg_alias: name the session that holds a LangGraph thread, for a caller-chosen
thread id, unless another session holds it already. Two first puts of one thread
racing each other so agree on one session (the loser deletes its own).

KEYS[1] thread alias hash     lr:{c<hhhh>}:lg:t:<thread id>   sid, user
ARGV[1] session id
ARGV[2] user id
ARGV[3] alias lifetime, milliseconds (> 0): the session's ttl plus a grace
ARGV[4] session id the alias is expected to name now ("" when none)
Replies:
  {1}                  the alias names ARGV[1]
  {-3, sid, user}      the alias names another session; nothing written
]]
local aliasKey = KEYS[1]
local current = redis.call('HMGET', aliasKey, 'sid', 'user')
if current[1] and current[1] ~= ARGV[4] and current[1] ~= ARGV[1] then
  return {-3, current[1], current[2]}
end
redis.call('HSET', aliasKey, 'sid', ARGV[1], 'user', ARGV[2])
redis.call('PEXPIRE', aliasKey, ARGV[3])
return {1}
