#!lua flags=no-writes
--[[
lg_list: one page of a thread's LangGraph checkpoints, newest first, each with its
pending writes. A read that does not slide the idle deadline (listing a thread's
history is a peek, as get_session is).

KEYS[1] session hash          lr:{b}:s:<sid>
KEYS[2] thread data hash      lr:{b}:s:<sid>:lg:d
KEYS[3] thread order zset     lr:{b}:s:<sid>:lg:o
ARGV[1] upper lex bound, exclusive: "(", then the name the page starts below
ARGV[2] lower lex bound, inclusive: "[", then the prefix of the names listed
ARGV[3] page size, checkpoints (> 0)
Replies:
  {1, name, record, write_count, write name, write record, ..., name, ...}   a page,
        newest first; fewer than ARGV[3] checkpoints when the range ends
  {0}     the session is not live: its checkpoints are gone
]]
local sessionKey, dataKey, orderKey = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', sessionKey) == 0 then return {0} end
local reply = {1}
local names = redis.call('ZRANGE', orderKey, ARGV[1], ARGV[2], 'BYLEX', 'REV', 'LIMIT', 0, tonumber(ARGV[3]))
for _, name in ipairs(names) do
  reply[#reply + 1] = name
  reply[#reply + 1] = redis.call('HGET', dataKey, name) or ''
  local writes = redis.call('ZRANGE', orderKey, '[w' .. string.sub(name, 2) .. '\0',
                            '(w' .. string.sub(name, 2) .. '\0\255', 'BYLEX')
  reply[#reply + 1] = #writes
  for _, write in ipairs(writes) do
    reply[#reply + 1] = write
    reply[#reply + 1] = redis.call('HGET', dataKey, write) or ''
  end
end
return reply
