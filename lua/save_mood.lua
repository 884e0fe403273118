#!lua
--[[
save_mood: set the personality's current mood on a live session. A mood is
session state: it is not activity, so it does not slide the idle deadline.
The meta hash keeps a copy, which outlives the session hash's expiry, so the
archive (archive_session.lua) records the mood the session ended with.

KEYS[1] session hash          lr:{b}:s:<sid>
KEYS[2] session meta hash     lr:{b}:s:<sid>:m
ARGV[1] mood record: msgpack array lacking its last element, the timestamp (ms)
Replies:
  {1, now_ms}   saved
  {-1}          expired, not yet archived; nothing written
  {0}           no such session; nothing written
]]
local sessionKey, metaKey = KEYS[1], KEYS[2]
if redis.call('EXISTS', sessionKey) == 0 then
  if redis.call('EXISTS', metaKey) == 1 then return {-1} end
  return {0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mood = ARGV[1] .. cmsgpack.pack(now)
redis.call('HSET', sessionKey, 'mood', mood)
redis.call('HSET', metaKey, 'mood', mood)
return {1, now}
