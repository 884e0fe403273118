#!lua
--[[
compat_drop: remove a caller-chosen session id's alias record and its
standalone mood, both hash-tagged by that id.

KEYS[1] alias hash            lr:{c<hhhh>}:lc:s:<caller id>
KEYS[2] mood hash             lr:{c<hhhh>}:lc:m:<caller id>
ARGV none
Replies:
  {n}   how many of the two existed
]]
return {redis.call('DEL', KEYS[1], KEYS[2])}
