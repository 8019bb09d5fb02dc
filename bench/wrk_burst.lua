-- wrk script of bench/rush_bench.py: a burst of exactly <count> POSTs, each with a token of its own,
-- then every wrk thread stops. Prints the run's figures as one JSON line (BENCH_RESULT), like
-- bench/wrk_scenario.lua, which the Python side reads the same way.
--
-- Arguments (after `--`): <method> <token file> <first> <count> <threads>
--   the tokens first .. first+count-1 of the file (1-based lines) are cut into one slice per wrk
--   thread (the last takes what the division leaves over).
--
-- Stopping without losing answers: a connection whose thread has no token left sends a spare
-- `GET /health/live` (answered 200, which no enrollment answers), and the thread stops once it has
-- received as many other answers as it had tokens. (Holding connections back instead, with wrk's
-- delay(), leaves them connected and silent: a sync gunicorn worker then waits on one until its
-- timeout kills it.)

local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

statuses = {}
issued = 0
exhausted = 0 -- requests for which no token was left (sent as a GET /health/live, never a POST)
token_answers = 0 -- answers to this thread's token requests (any status but 200)
thread_index = 0

local method
local token_requests = {} -- the POSTs, one per token (common.pool_requests)
local next_request = 1
local spare_request
local skip_first = false

setup = common.setup

function init(args)
  method = args[1]
  local first, count, thread_count = tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  token_requests = common.pool_requests(method, args[2], first, count, thread_count, thread_index)
  spare_request = wrk.format("GET", "/health/live")
  -- wrk calls the first thread's request() once to check it, and never sends that one: the check
  -- gets the spare request, so that no participant is left out.
  skip_first = thread_index == 0
end

function request()
  if skip_first then
    skip_first = false
    return spare_request
  end
  local pooled = token_requests[next_request]
  if pooled == nil then
    exhausted = exhausted + 1
    return spare_request
  end
  issued = issued + 1
  next_request = next_request + 1
  return pooled
end

function response(status, headers, body)
  common.count_status(status)
  if status ~= 200 then
    token_answers = token_answers + 1
    if token_answers >= #token_requests then
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  common.report(summary, latency, { "issued", "exhausted" })
end
