#!lua
--[[
save_episode: remember an episode of a user's story, ranked by importance.

KEYS[1] episodes ZSET         lr:{b}:u:<uid>:episodes     (episode id, scored by importance)
KEYS[2] episode bodies hash   lr:{b}:u:<uid>:episodes:b   (episode id -> episode)
ARGV[1] episode id
ARGV[2] importance (0 to 10)
ARGV[3] episode: msgpack array lacking its last element, the timestamp (ms)
Replies:
  {1, now_ms}
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. cmsgpack.pack(now))
return {1, now}
