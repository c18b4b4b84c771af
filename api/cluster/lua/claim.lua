-- claim(instance, max_n, lease_ms) -> {{task_id, entry_id, token, attempts, reclaimed_from}...}
local instance, max_n, lease_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
-- Claiming is also a heartbeat: the worker counts as live until now + lease.
redis.call('ZADD', K.workers, now + lease_ms, instance)
-- Paused (by an operator, at start-up or by the budget): nothing starts anywhere.
if state_field('paused') == '1' then
  return {}
end

local claims = {}

local function field(fields, name)
  for i = 1, #fields, 2 do
    if fields[i] == name then
      return fields[i + 1]
    end
  end
  return nil
end

-- An entry now held by this instance: it becomes a claim, unless its task ended (a
-- cancel while queued) or the entry is stale (a retry queued a newer one).
local function take(entry_id, fields)
  local task_id = fields and field(fields, 'task_id')
  if not task_id or redis.call('HEXISTS', K.ended, task_id) == 1
      or redis.call('HGET', K.entries, task_id) ~= entry_id then
    drop_entry(entry_id)
    return
  end
  local previous = redis.call('HGET', K.leases, task_id)
  local reclaimed_from = previous and string.match(previous, '^(.*)|[^|]*$') or ''
  local token = redis.call('HINCRBY', K.state, 'lease_tokens', 1)
  redis.call('HSET', K.leases, task_id, instance .. '|' .. token)
  local attempts = tonumber(redis.call('HGET', K.attempts, task_id)) or 0
  table.insert(claims, {task_id, entry_id, tostring(token), attempts, reclaimed_from})
end

-- First the entries whose holder stopped renewing for lease_ms (died, partitioned) or
-- handed back (release sets their idle time far past any lease).
local cursor = '0-0'
for _ = 1, 10 do
  local wanted = max_n - #claims
  if wanted <= 0 then break end
  local result = redis.pcall('XAUTOCLAIM', K.tasks, GROUP, instance, lease_ms, cursor,
    'COUNT', wanted)
  if result.err then
    -- No group yet: nothing was ever submitted to this session. Anything else (an ACL
    -- that forbids XAUTOCLAIM) is an error: a worker must not idle silently.
    if string.find(result.err, 'NOGROUP', 1, true) then return claims end
    return redis.error_reply(result.err)
  end
  for _, entry in ipairs(result[2]) do
    take(entry[1], entry[2])
  end
  cursor = result[1]
  if cursor == '0-0' then break end
end

-- Then tasks never delivered to anyone.
for _ = 1, 10 do
  local wanted = max_n - #claims
  if wanted <= 0 then break end
  local result = redis.pcall('XREADGROUP', 'GROUP', GROUP, instance, 'COUNT', wanted,
    'STREAMS', K.tasks, '>')
  if type(result) == 'table' and result.err then return redis.error_reply(result.err) end
  if type(result) ~= 'table' or #result == 0 then break end
  local entries = result[1][2]
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    take(entry[1], entry[2])
  end
end
return claims
