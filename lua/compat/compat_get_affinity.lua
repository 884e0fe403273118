#!lua flags=no-writes
--[[
compat_get_affinity: a user's points with one personality and the record a
LuminoraCore caller saved beside them.

KEYS[1] affinity hash         lr:{b}:u:<uid>:affinity   (personality -> points)
KEYS[2] affinity records      lr:{b}:u:<uid>:lc:a       (personality -> caller's record)
ARGV[1] personality name
Replies:
  {points or nil, record or nil}
]]
return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}
