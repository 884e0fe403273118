#!lua
--[[
compat_put_mood: the mood of a session this store does not know (LuminoraCore
saves moods under any id). Kept beside the alias records, expiring like a session.

KEYS[1] mood hash             lr:{c<hhhh>}:lc:m:<caller id>
ARGV[1] time to live, milliseconds
ARGV[2] mood record: msgpack array lacking its last element, the time (ms)
Replies:
  {1, now_ms}
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'mood', ARGV[2] .. cmsgpack.pack(now))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return {1, now}
