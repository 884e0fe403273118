#!lua
--[[
lg_drop: remove LangGraph checkpoints of one thread, with their pending writes:
all of them, all but the latest of each namespace, or those of given runs. The
conversation they held is in the session's history already and stays there.

The names in the order zset are "c" NUL namespace NUL checkpoint id, so that lex
order groups a namespace's checkpoints, oldest first. A thread keeps at most
max_checkpoints per namespace (lg_put), so a pass over its names is bounded.

KEYS[1] thread data hash      lr:{b}:s:<sid>:lg:d
KEYS[2] thread order zset     lr:{b}:s:<sid>:lg:o
KEYS[3] thread message ids    lr:{b}:s:<sid>:lg:n
ARGV[1] mode: "all" (every checkpoint), "thread" (every checkpoint and the message ids:
        the thread is deleted), "keep_latest", or "runs"
ARGV[2..] run ids (mode "runs"): checkpoints whose run id (the field "r" NUL namespace NUL
          checkpoint id) is one of them go
Replies:
  {1, removed}   removed: how many checkpoints went
]]
local dataKey, orderKey, idsKey = KEYS[1], KEYS[2], KEYS[3]
local mode = ARGV[1]
if mode == 'all' or mode == 'thread' then
  local removed = #redis.call('ZRANGE', orderKey, '[c\0', '(c\0\255', 'BYLEX')
  if mode == 'thread' then
    redis.call('DEL', dataKey, orderKey, idsKey)
  else
    redis.call('DEL', dataKey, orderKey)
  end
  return {1, removed}
end
local runs = {}
for i = 2, #ARGV do runs[ARGV[i]] = true end
local names = redis.call('ZRANGE', orderKey, '[c\0', '(c\0\255', 'BYLEX')
local removed = 0
for i, name in ipairs(names) do
  local drop
  if mode == 'keep_latest' then
    -- The next name in the same namespace is newer.
    local nsEnd = string.find(name, '\0', 3, true)
    local nextName = names[i + 1]
    drop = nextName ~= nil and string.sub(nextName, 1, nsEnd) == string.sub(name, 1, nsEnd)
  else
    local run = redis.call('HGET', dataKey, 'r' .. string.sub(name, 2))
    drop = run ~= false and runs[run] == true
  end
  if drop then
    for _, write in ipairs(redis.call('ZRANGE', orderKey, '[w' .. string.sub(name, 2) .. '\0',
                                      '(w' .. string.sub(name, 2) .. '\0\255', 'BYLEX')) do
      redis.call('ZREM', orderKey, write)
      redis.call('HDEL', dataKey, write)
    end
    redis.call('ZREM', orderKey, name)
    redis.call('HDEL', dataKey, name, 'r' .. string.sub(name, 2))
    removed = removed + 1
  end
end
return {1, removed}
