#!lua
--[[
compat_save_episode: remember an episode and keep the caller's extra fields
and an insertion sequence beside it (LuminoraCore lists episodes in save order).

KEYS[1] episodes ZSET         lr:{b}:u:<uid>:episodes     (episode id, scored by importance)
KEYS[2] episode bodies hash   lr:{b}:u:<uid>:episodes:b   (episode id -> episode)
KEYS[3] episode records       lr:{b}:u:<uid>:lc:e         (episode id -> [extras, seq])
KEYS[4] user hash             lr:{b}:u:<uid>              (lc_seq counter)
ARGV[1] episode id
ARGV[2] importance (0 to 10)
ARGV[3] episode: msgpack array lacking its last element, the timestamp (ms)
ARGV[4] record: msgpack array of 2 lacking its last element, the sequence number
Replies:
  {1, now_ms}
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('HINCRBY', KEYS[4], 'lc_seq', 1)
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. cmsgpack.pack(now))
redis.call('HSET', KEYS[3], ARGV[1], ARGV[4] .. cmsgpack.pack(seq))
return {1, now}
