#!lua
--[[
lg_note_run: record that a LangGraph run wrote checkpoints to a thread, so that
delete_for_runs finds the threads of a run without scanning. The record lives as
long as the longest thread it names can.

KEYS[1] run record hash       lr:{c<hhhh>}:lg:r:<run id>   thread id -> 1
ARGV[1] thread id
ARGV[2] lifetime, milliseconds (> 0): the thread session's ttl plus a grace
Replies:
  {1}
]]
local runKey = KEYS[1]
redis.call('HSET', runKey, ARGV[1], 1)
if redis.call('PTTL', runKey) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', runKey, ARGV[2])
end
return {1}
