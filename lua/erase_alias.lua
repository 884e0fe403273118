#!lua
--[[
erase_alias: part of erase_user: remove the alias record of a caller-chosen id
(a LuminoraCore session id or a LangGraph thread id) that names one session of
the user being erased, and the standalone mood saved under a LuminoraCore id
for that user. An alias naming another session (the id was reused since) or
another user, and a mood of another user, are left alone.

KEYS[1] alias hash            lr:{c<hhhh>}:lc:s:<caller id>  or  lr:{c<hhhh>}:lg:t:<thread id>
KEYS[2] mood hash, optional   lr:{c<hhhh>}:lc:m:<caller id>  (LuminoraCore ids only)
ARGV[1] session id the alias must name
ARGV[2] user id
Replies:
  removed_keys   0, 1 or 2
]]
local removed = 0
local named = redis.call('HMGET', KEYS[1], 'sid', 'user')
if named[1] == ARGV[1] and named[2] == ARGV[2] then
  removed = removed + redis.call('DEL', KEYS[1])
end
if KEYS[2] then
  local mood = redis.call('HGET', KEYS[2], 'mood')
  if mood then
    local ok, record = pcall(cmsgpack.unpack, mood)
    if ok and type(record) == 'table' and record[1] == ARGV[2] then
      removed = removed + redis.call('DEL', KEYS[2])
    end
  end
end
return removed
