#!lua
--[[
compat_save_fact: set one fact about a user and keep the caller's extra fields
and an insertion sequence beside it (LuminoraCore lists facts in save order).

KEYS[1] facts hash            lr:{b}:u:<uid>:facts      (msgpack [category, key] -> fact)
KEYS[2] fact records          lr:{b}:u:<uid>:lc:f       (same field -> [extras, seq])
KEYS[3] user hash             lr:{b}:u:<uid>            (lc_seq counter)
ARGV[1] field: msgpack array [category, key]
ARGV[2] fact: msgpack array lacking its last element, the timestamp (ms)
ARGV[3] record: msgpack array of 2 lacking its last element, the sequence number
Replies:
  {1, now_ms}
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('HINCRBY', KEYS[3], 'lc_seq', 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. cmsgpack.pack(now))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3] .. cmsgpack.pack(seq))
return {1, now}
