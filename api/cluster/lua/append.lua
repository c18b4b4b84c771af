-- append(warn_threshold, [src, src_seq, task_id, token, kind, cost_usd, event_json] * n)
--   -> n replies {status, seq, spent_usd, crossed (comma separated), budget_usd, paused_now,
--      announce (1: a budget crossing is not announced yet: announce it)}
-- status: ok | dup | fenced. A budget_warning/budget_exhausted session event already
-- announced (by another worker) is a dup too. One call appends a batch, in order: one script run and one
-- reply per batch instead of per event (the producers batch what they buffered).
local warn_threshold = tonumber(ARGV[1])
local FIELDS = 7

local function reply(status, seq, crossed, paused_now)
  return {status, seq, state_field('spent_usd'), table.concat(crossed or {}, ','),
    state_field('budget_usd'), paused_now or 0, announce_pending() and 1 or 0}
end

local function append_one(src, src_seq, task_id, token, kind, cost, event_json)
  -- A producer retrying after a connection error sends the same src_seq again: what
  -- already landed is not counted twice (exactly-once accounting).
  local last = tonumber(redis.call('HGET', K.appended, src)) or 0
  if src_seq <= last then
    return reply('dup', 0)
  end
  redis.call('HSET', K.appended, src, src_seq)

  -- Fencing: only the holder of the task's current lease may speak for it. A worker
  -- whose lease was reclaimed (or whose task ended under another holder) is rejected,
  -- so its late usage never counts twice.
  if task_id ~= '*' and redis.call('HGET', K.leases, task_id) ~= src .. '|' .. token then
    return reply('fenced', 0)
  end
  if task_id == '*' and not admit_announcement(kind) then
    return reply('dup', 0)
  end

  local seq = append_event(event_json, src, src_seq)
  local crossed, paused_now = {}, 0
  if kind == 'task_started' then
    redis.call('HINCRBY', K.attempts, task_id, 1)
  elseif kind == 'task_usage' and cost then
    local spent = (tonumber(state_field('spent_usd')) or 0) + cost
    redis.call('HSET', K.state, 'spent_usd', format_usd(spent))
    crossed, paused_now = budget_crossings(spent, warn_threshold)
  elseif END_STATES[kind] and task_id ~= '*' then
    end_task(task_id, END_STATES[kind])
  end
  return reply('ok', seq, crossed, paused_now)
end

local replies = {}
for base = 2, #ARGV, FIELDS do
  local one = append_one(ARGV[base], tonumber(ARGV[base + 1]), ARGV[base + 2],
    ARGV[base + 3], ARGV[base + 4], tonumber(ARGV[base + 5]), ARGV[base + 6])
  for _, value in ipairs(one) do
    table.insert(replies, value)
  end
end
return replies
