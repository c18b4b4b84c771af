-- state() -> {state hash as a flat list, seq counter, live workers, open tasks}
-- One script, so the three are read at one instant.
return {
  redis.call('HGETALL', K.state),
  redis.call('GET', K.seq) or '0',
  redis.call('ZCOUNT', K.workers, '(' .. now_ms(), '+inf'),
  redis.call('HLEN', K.entries),
}
