#!lua flags=no-writes
--[[
lg_run_ids: one HSCAN step over a LangGraph thread's data hash, listing the run
ids its checkpoints were written by (the fields "r" NUL namespace NUL checkpoint
id), for export_user and erase_user. A run id may come back more than once.

KEYS[1] thread data hash      lr:{b}:s:<sid>:lg:d
ARGV[1] cursor ("0" to start)
ARGV[2] COUNT hint: how many fields per step (> 0)
Replies:
  {next_cursor, run_id, ...}   next_cursor "0": the scan is complete
]]
local step = redis.call('HSCAN', KEYS[1], ARGV[1], 'MATCH', 'r\0*', 'COUNT', ARGV[2])
local reply = {step[1]}
for i = 2, #step[2], 2 do reply[#reply + 1] = step[2][i] end
return reply
