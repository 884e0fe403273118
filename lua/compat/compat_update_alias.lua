#!lua
--[[
compat_update_alias: change fields of an existing alias record; never creates one.

KEYS[1] alias hash            lr:{c<hhhh>}:lc:s:<caller id>
ARGV[1..] field, value pairs
Replies:
  {1}   updated
  {0}   no such alias; nothing written
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return {0} end
redis.call('HSET', KEYS[1], unpack(ARGV))
return {1}
