#!lua flags=no-writes
--[[
get_affinity: a user's affinity points with one personality or with all.

KEYS[1] affinity hash         lr:{b}:u:<uid>:affinity
ARGV[1] personality name, or "" for every personality
Replies:
  {points}                one personality (false when never set)
  {name, points, ...}     every personality
]]
if ARGV[1] == '' then return redis.call('HGETALL', KEYS[1]) end
return {redis.call('HGET', KEYS[1], ARGV[1])}
