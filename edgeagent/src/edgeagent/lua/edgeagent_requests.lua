-- Request counters (log_by_lua at http level, every request that reached a server), read
-- by edgeagent through the status server (GET /edgeagent/requests) and exported on its
-- /metrics as ingress-nginx's nginx_ingress_controller_requests and
-- nginx_ingress_controller_request_duration_seconds (edgeagent's request_counts.py), so a
-- cutover compares the edge with an in-cluster ingress-nginx from the same counters.
--
-- A series is one SERIES key "STATUS METHOD HOST BACKEND": HOST is the rendered server's
-- host as written ($edgeagent_server_host: *.example.com, not $server_name's regex), or
-- for a route table host (edgeagent_routes.lua, served by the default server) the table
-- entry's name ($edgeagent_route_host: *.example.com for any host under it); METHOD is
-- one of METHODS or OTHER; BACKEND is $edgeagent_backend (empty: nginx answered itself). The agent
-- turns BACKEND into namespace and service, and HOST and those into the Ingress.
-- Per request: one key built, one lookup of its number, three increments of the shared
-- dict (count, duration sum, duration bucket); nothing else is locked. The dict keeps, for
-- series number N (1, 2...), 16 keys (request_counts.SERIES_BYTES sizes the dict by them):
--   "i" SERIES   N, its number
--   "n" N        its SERIES key, for the reader (no get_keys, which locks the whole dict)
--   "c" N        requests
--   "s" N        sum of $request_time
--   "b" I " " N  requests whose $request_time is at most BUCKETS[I] and above BUCKETS[I-1]
--                (I = #BUCKETS + 1: above the last, 12 keys); the reader makes them cumulative
-- and "#series" (series numbers given) and "#overflow" (requests not counted: max_series
-- series exist, a bound, as method comes from clients; a host longer than a DNS name; or
-- the dict was full, which its size leaves for a fault: a write that failed or evicted).
local state = require("edgeagent_state")

local _M = {}

local counters = ngx.shared.edgeagent_requests

-- The duration buckets' upper bounds in seconds (request_counts.BUCKETS, given by init).
local BUCKETS = {}
local INF = 1
-- A DNS name's longest: a longer host is a fault, not a series (and would break SERIES_BYTES).
local MAX_HOST = 253
-- nginx accepts any method a client makes up: the others count as one, OTHER.
local METHODS = {
    GET = true, HEAD = true, POST = true, PUT = true, DELETE = true, PATCH = true,
    OPTIONS = true, CONNECT = true, TRACE = true,
}

local max_series = 0

function _M.init(limit, buckets)
    max_series = limit
    BUCKETS = buckets
    INF = #buckets + 1
end

-- A write that failed, or that evicted another key (forcible), lost a count.
local function kept(ok, _, forcible)
    return ok ~= nil and ok ~= false and not forcible
end

-- The series' number; nil: no more numbers, or the dict is full.
local function number_of(series)
    local number = counters:get("i" .. series)
    if number ~= nil then
        return number
    end
    number = counters:incr("#series", 1, 0)
    if number == nil or number > max_series then
        return nil
    end
    local added, err, forcible = counters:add("i" .. series, number)
    if not added and err == "exists" then
        -- Another worker numbered it meanwhile: this number stays unused (the reader skips it).
        return counters:get("i" .. series)
    end
    if not kept(added, err, forcible) or not kept(counters:set("n" .. number, series)) then
        return nil
    end
    return number
end

local function bucket_of(seconds)
    for i = 1, #BUCKETS do
        if seconds <= BUCKETS[i] then
            return i
        end
    end
    return INF
end

-- Adds a request to its series; false: not counted, or evicting another key to count it.
local function count(series, seconds)
    local number = number_of(series)
    return number ~= nil
        and kept(counters:incr("c" .. number, 1, 0))
        and kept(counters:incr("s" .. number, seconds, 0))
        and kept(counters:incr("b" .. bucket_of(seconds) .. " " .. number, 1, 0))
end

function _M.log()
    local var = ngx.var
    -- Never the client's Host: edgeagent_routes.lua names the table entry that routed the
    -- request (empty when none did, even for a client asking /_edgeagent-route itself).
    local host = var.edgeagent_route_host or ""
    if host == "" then
        host = var.edgeagent_server_host or ""
    end
    local backend = var.edgeagent_backend or ""
    if host == "" and backend == "" then
        -- A host no Ingress defines, answered by nginx itself: not counted, as ingress-nginx
        -- (--metrics-per-undefined-host=false).
        return
    end
    -- The reader splits a series at spaces and lines at tabs and newlines.
    host = host:gsub("%s", "_")
    local method = var.request_method
    if not METHODS[method] then
        method = "OTHER"
    end
    local series = var.status .. " " .. method .. " " .. host .. " " .. backend
    if #host > MAX_HOST or not count(series, tonumber(var.request_time) or 0) then
        counters:incr("#overflow", 1, 0)
    end
end

-- content_by_lua of GET /edgeagent/requests (the status server, loopback, with the
-- control token): "overflow N" then one line per series,
-- "SERIES<TAB>COUNT<TAB>SUM<TAB>B1 B2 ... B12", buckets cumulative.
function _M.handle()
    if ngx.var.http_authorization ~= "Bearer " .. state.token then
        ngx.status = ngx.HTTP_UNAUTHORIZED
        ngx.say("missing or wrong token")
        return ngx.exit(ngx.HTTP_UNAUTHORIZED)
    end
    ngx.header["Content-Type"] = "text/plain"
    local lines = { "overflow " .. (counters:get("#overflow") or 0) }
    local last = math.min(counters:get("#series") or 0, max_series)
    for number = 1, last do
        local series = counters:get("n" .. number)
        if series ~= nil then
            local cumulative, buckets = 0, {}
            for i = 1, INF do
                cumulative = cumulative + (counters:get("b" .. i .. " " .. number) or 0)
                buckets[i] = cumulative
            end
            lines[#lines + 1] = series .. "\t" .. (counters:get("c" .. number) or 0) .. "\t"
                .. string.format("%.6f", counters:get("s" .. number) or 0) .. "\t"
                .. table.concat(buckets, " ")
        end
    end
    ngx.say(table.concat(lines, "\n"))
end

return _M
