#!lua
--[[
save_fact: set one fact about a user (insert or replace).

KEYS[1] facts hash            lr:{b}:u:<uid>:facts   (msgpack [category, key] -> fact)
ARGV[1] field: msgpack array [category, key]
ARGV[2] fact: msgpack array lacking its last element, the timestamp (ms); its element
        before that is the token count, a msgpack uint32 (0xce + 4 bytes)
Replies:
  {1, now_ms}
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. cmsgpack.pack(now))
return {1, now}
