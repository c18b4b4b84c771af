-- control(op, task_id, by, reason, suspend, budget_usd, warn_threshold, events...)
--   -> {status, seq, crossed, spent_usd, budget_usd, paused_now}
-- status: ok | refused:<reason>. events: the wire JSON appended when the command acts
-- (as the single-host executor publishes them), each with the session's next seq.
local op, task_id, by, reason, suspend = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local budget_arg, warn_threshold = ARGV[6], tonumber(ARGV[7])
local FIRST_EVENT = 8

local function reply(status, seq, crossed, paused_now)
  return {status, seq or 0, table.concat(crossed or {}, ','), state_field('spent_usd'),
    state_field('budget_usd'), paused_now or 0}
end

local function spent()
  return tonumber(state_field('spent_usd')) or 0
end

local function event_kind(event_json)
  local ok, decoded = pcall(cjson.decode, event_json)
  return ok and type(decoded) == 'table' and decoded.event or ''
end

-- A budget pause announces the exhaustion (and a warning it crossed too): exactly once
-- per crossing, whichever workers (or serve nodes) send it, and never once the budget
-- was raised or the announcement is in. The warning is dropped if already announced.
local function budget_announcement()
  if state_field('exhausted') ~= '1' or state_field('exhausted_announced') == '1' then
    return nil
  end
  local admitted = {}
  for i = FIRST_EVENT, #ARGV do
    if admit_announcement(event_kind(ARGV[i])) then
      table.insert(admitted, ARGV[i])
    end
  end
  -- The caller's events may lack the budget_exhausted one (an old caller): still once.
  redis.call('HSET', K.state, 'exhausted_announced', '1', 'warn_announced', '1')
  return admitted
end

local function pause()
  local events = ARGV
  local first = FIRST_EVENT
  if by == 'budget' then
    events = budget_announcement()
    if not events then
      return reply('ok', 0)
    end
    first = 1
  end
  local already = state_field('paused') == '1'
  -- Every worker hears it, even when already paused: a pause that suspends stops the
  -- commands a plain pause left running, as on one host.
  control_entry('pause', '*', by, reason, suspend)
  -- A budget pause is announced by the caller after the crossing set `paused`; its
  -- events (crossings, executor_paused) always go in. An operator's second pause says
  -- nothing, as Executor.pause.
  if already and by ~= 'budget' then
    return reply('ok', 0)
  end
  if not already then
    redis.call('HSET', K.state, 'paused', '1', 'paused_by', by, 'pause_reason', reason)
  end
  return reply('ok', append_all(events, first, by))
end

local function resume()
  local limit = tonumber(state_field('budget_usd'))
  if limit and spent() >= limit then
    return reply(string.format(
      'refused:cannot resume: spent $%.4f of the $%.4f budget; raise the budget first',
      spent(), limit))
  end
  if state_field('paused') ~= '1' then
    return reply('ok', 0)
  end
  redis.call('HSET', K.state, 'paused', '0', 'paused_by', '', 'pause_reason', '')
  control_entry('resume', '*', by, reason, '')
  return reply('ok', append_all(ARGV, FIRST_EVENT, by))
end

-- Mirrors executor.pricing.Budget.set_limit: thresholds no longer crossed are armed
-- again; a different limit the spend has reached is exhausted anew.
local function budget()
  local previous = state_field('budget_usd')
  local limit = tonumber(budget_arg)
  local spend = spent()
  redis.call('HSET', K.state, 'budget_usd', budget_arg)
  if not limit or spend < warn_threshold * limit then
    redis.call('HSET', K.state, 'warned', '0')
  end
  if not limit or spend < limit or tonumber(previous) ~= limit then
    redis.call('HSET', K.state, 'exhausted', '0')
  end
  local seq = append_all(ARGV, FIRST_EVENT, by)
  local crossed, paused_now = budget_crossings(spend, warn_threshold)
  control_entry('budget', '*', by, reason, '')
  return reply('ok', seq, crossed, paused_now)
end

local function cancel()
  if redis.call('HEXISTS', K.ended, task_id) == 1 then
    return reply('refused:already ended')
  end
  local lease = redis.call('HGET', K.leases, task_id)
  if lease then
    -- Held by a worker: the holder cancels it, reaps its process group and appends
    -- task_cancelled itself.
    control_entry('cancel', task_id, by, reason, '')
    local holder = string.match(lease, '^(.*)|[^|]*$')
    if (tonumber(redis.call('ZSCORE', K.workers, holder)) or 0) > now_ms() then
      return reply('ok', 0)
    end
    -- Its holder stopped renewing (killed, partitioned): nobody would act on the
    -- command and the next claimer would run the task again. It ends here; the holder,
    -- should it wake up, is fenced.
  elseif redis.call('HEXISTS', K.entries, task_id) == 0 then
    return reply('refused:unknown task')
  end
  end_task(task_id, 'cancelled')
  return reply('ok', append_all(ARGV, FIRST_EVENT, by))
end

local function retry()
  local ended = redis.call('HGET', K.ended, task_id)
  if not ended then
    if redis.call('HEXISTS', K.specs, task_id) == 0 then
      return reply('refused:unknown task')
    end
    return reply('refused:not ended')
  end
  if ended ~= 'failed' and ended ~= 'cancelled' then
    return reply('refused:' .. ended .. ' tasks are not retried')
  end
  redis.call('HDEL', K.ended, task_id)
  local entry = redis.call('XADD', K.tasks, '*', 'task_id', task_id)
  redis.call('HSET', K.entries, task_id, entry)
  local seq = append_all(ARGV, FIRST_EVENT, by)
  control_entry('tasks', task_id, by, reason, '')
  return reply('ok', seq)
end

local ops = {pause = pause, resume = resume, budget = budget, cancel = cancel, retry = retry}
if not ops[op] then
  return reply('refused:unknown operation ' .. op)
end
return ops[op]()
