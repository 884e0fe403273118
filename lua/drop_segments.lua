#!lua
--[[
drop_segments: delete the segments of an archived conversation whose record
retention has trimmed (trim_archive deletes the record and its two lists; the
segments' count was read before). Nothing is deleted while the record exists,
so a conversation still in the archive never loses a segment.

KEYS[1]   archived record hash    lr:{b}:u:<uid>:a:<sid>
KEYS[2..] its segments            lr:{b}:u:<uid>:a:<sid>:g:<n>
ARGV      none
Replies:
  {1}   the segments are gone (UNLINKed: freed off the main thread)
  {0}   the record still exists; nothing deleted
]]
if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
for i = 2, #KEYS do redis.call('UNLINK', KEYS[i]) end
return {1}
