-- wrk script of bench/http_bench.py: sends the scenario's requests, counts the answers per status,
-- and prints the run's figures as one JSON line (prefixed with BENCH_RESULT) for the Python side.
--
-- Arguments (after `--` on wrk's command line):
--   fixed <method> [token]
--       the same request every time, with `Authorization: Bearer <token>` when a token is given.
--   token-pool <method> <token file> <first> <count> <threads>
--       each request carries a token never used before: the tokens first .. first+count-1 of the
--       file (1-based lines) are cut into one disjoint slice per wrk thread (bench/wrk_common.lua),
--       so no two requests of
--       the run (nor of another run given another range) share a participant. A thread that runs
--       out sends its requests without a token (answered 401) and counts them as `exhausted`, so
--       the Python side reports an invalid run instead of mistaking repeated tokens for load.
--
-- Each wrk thread runs this file in its own Lua state (init, request, response); setup and done run
-- in a separate one, which reads the threads' counters through thread:get.

local common = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_common.lua")

-- Per-thread state (read by done() through thread:get).
statuses = {} -- status code (as a string) -> responses
issued = 0 -- requests handed to wrk by request()
exhausted = 0 -- requests sent without a token because this thread's slice was used up
thread_index = 0 -- set by setup()

local method
local fixed_request
local pool_requests = {} -- the token pool's requests (common.pool_requests)
local next_request = 1

setup = common.setup

function init(args)
  local mode = args[1]
  method = args[2]
  if mode == "fixed" then
    if args[3] and args[3] ~= "" then
      fixed_request = common.bearer_request(method, args[3])
    else
      fixed_request = common.format_request(method, {})
    end
  elseif mode == "token-pool" then
    local first, count, thread_count = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
    pool_requests = common.pool_requests(method, args[3], first, count, thread_count, thread_index)
  else
    error("unknown mode " .. tostring(mode))
  end
end

function request()
  issued = issued + 1
  if fixed_request then
    return fixed_request
  end
  local pooled = pool_requests[next_request]
  if pooled == nil then
    exhausted = exhausted + 1
    return common.format_request(method, {})
  end
  next_request = next_request + 1
  return pooled
end

function response(status, headers, body)
  common.count_status(status)
end

function done(summary, latency, requests)
  common.report(summary, latency, { "issued", "exhausted" })
end
