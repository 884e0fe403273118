--[[
record_trait: append a caller-defined change of a personality's trait to the
user's evolution log.

KEYS[1] evolution ZSET        lr:{b}:u:<uid>:evolution  (record, scored by sequence number)
KEYS[2] user hash             lr:{b}:u:<uid>            (evolution sequence counter)
ARGV[1] evolution record: msgpack array lacking its last two elements, which
        this script appends: sequence number, timestamp (ms)
Replies:
  {1, now_ms, sequence}
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('HINCRBY', KEYS[2], 'evolution_seq', 1)
redis.call('ZADD', KEYS[1], seq, ARGV[1] .. cmsgpack.pack(seq) .. cmsgpack.pack(now))
return {1, now, seq}
