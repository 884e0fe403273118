--[[
floor_turn: the chat turn a user would write by hand, the benchmark's floor. Append the
turn's messages, slide the session's expiry to min(idle, absolute deadline - now), trim
the history and return its last messages as raw bytes.

KEYS[1] session hash, fields abs (absolute deadline, ms since the epoch), idle (ms)
KEYS[2] history list of msgpack messages
ARGV[1] history bound, messages (> 0)
ARGV[2] messages to return (> 0)
ARGV[3..] msgpack messages to append
Replies:
  {message...}   the last ARGV[2] messages, oldest first
  false          no such session, or past its absolute deadline; nothing written
]]
local s = redis.call('HMGET', KEYS[1], 'abs', 'idle')
if not s[1] then return false end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = math.min(tonumber(s[2]), tonumber(s[1]) - now)
if ttl <= 0 then return false end
redis.call('RPUSH', KEYS[2], unpack(ARGV, 3))
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[1]), -1)
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return redis.call('LRANGE', KEYS[2], -tonumber(ARGV[2]), -1)
