#!lua
--[[
erase_run_threads: part of erase_user: forget the threads of the user being
erased in the record of a LangGraph run (which threads it wrote checkpoints
to). Other threads the run names stay; the record goes when none is left.

KEYS[1] run record hash       lr:{c<hhhh>}:lg:r:<run id>   thread id -> 1
ARGV[1..] thread ids of the user
Replies:
  removed_keys   1 when this call emptied the record, else 0
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], unpack(ARGV))
return 1 - redis.call('EXISTS', KEYS[1])
