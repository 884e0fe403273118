#!lua
--[[
record_trait: append a caller-defined change of a personality's trait to the
user's evolution log.

Idempotent per call, as update_affinity is: the user hash keeps the last call's
random operation id with its outcome (field trait_op: "<id> <sequence> <now_ms>"),
and a resend of that call writes nothing and answers as the original did.

KEYS[1] evolution ZSET        lr:{b}:u:<uid>:evolution  (record, scored by sequence number)
KEYS[2] user hash             lr:{b}:u:<uid>            (evolution sequence counter)
ARGV[1] evolution record: msgpack array lacking its last two elements, which
        this script appends: sequence number, timestamp (ms)
ARGV[2] operation id: random, one per call
Replies:
  {1, now_ms, sequence}
]]
local evolutionKey, userKey = KEYS[1], KEYS[2]
local done = redis.call('HGET', userKey, 'trait_op')
if done then
  local id, seq, now = string.match(done, '^(%S+) (%d+) (%d+)$')
  if id == ARGV[2] then return {1, tonumber(now), tonumber(seq)} end
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seq = redis.call('HINCRBY', userKey, 'evolution_seq', 1)
redis.call('ZADD', evolutionKey, seq, ARGV[1] .. cmsgpack.pack(seq) .. cmsgpack.pack(now))
redis.call('HSET', userKey, 'trait_op', ARGV[2] .. ' ' .. seq .. ' ' .. now)
return {1, now, seq}
