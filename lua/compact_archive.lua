#!lua
--[[
compact_archive: replace one unit of an archived conversation, its message
list(s), with one zstd frame the caller compressed from them (Lua has no zstd).

A conversation's units are its segments 1..segs, then its tail (the archived
overflow followed by the archived history); unit u is segment u for u <= segs
and the tail for u = segs + 1. Units are compacted in order, one call each, so
the record's zstd field (how many units are frames) says which keys hold
frames: a segment key keeps its name and becomes a STRING; the tail's frame
goes to the history key and the overflow key is deleted. An empty unit gets no
key. The caller read the lists first; when the record, its counts or a list's
length changed since, nothing is written.

KEYS[1] archived record hash     lr:{b}:u:<uid>:a:<sid>
KEYS[2] the unit's list          lr:{b}:u:<uid>:a:<sid>:g:<u>  or  lr:{b}:u:<uid>:a:<sid>:h
KEYS[3] archived overflow list   lr:{b}:u:<uid>:a:<sid>:o   (read and deleted for the tail only)
ARGV[1] u, the unit (>= 1)
ARGV[2] how many segments the record counted (segs) when the caller read it
ARGV[3] how many messages the caller read from the unit's lists (both, for the tail)
ARGV[4] the frame: zstd bytes, or "" for an empty unit
Replies:
  {1, u}        unit u is a frame now
  {0}           nothing to do: the record is gone or unit u is a frame already
  {-4, zstd, segs}  the record's counts are not what the caller read; read again
  {-6}          a list's length is not what the caller read; nothing written
]]
local recordKey, unitKey, overflowKey = KEYS[1], KEYS[2], KEYS[3]
local u, segs, length = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])

local record = redis.call('HMGET', recordKey, 'pers', 'segs', 'zstd')
if not record[1] then return {0} end
local done, recordSegs = tonumber(record[3]) or 0, tonumber(record[2]) or 0
if done >= u then return {0} end
if done ~= u - 1 or recordSegs ~= segs or u > segs + 1 then return {-4, done, recordSegs} end
local tail = u == segs + 1
if redis.call('TYPE', unitKey).ok == 'string' then return {-6} end
local found = redis.call('LLEN', unitKey)
if tail then found = found + redis.call('LLEN', overflowKey) end
if found ~= length then return {-6} end
redis.call('DEL', unitKey)
if tail then redis.call('DEL', overflowKey) end
if ARGV[4] ~= '' then redis.call('SET', unitKey, ARGV[4]) end
redis.call('HSET', recordKey, 'zstd', u)
return {1, u}
