-- The route table (server_rewrite_by_lua of the default server): the hosts that need no
-- server block of their own (edgeagent's route_table.py) are routed here, from the rules
-- edgeagent pushed (`route` records, edgeagent_state.lua), so adding, changing or
-- removing them needs no reload. nginx gives the default server every name no server
-- block claims; a name the table does not hold goes on to the default server's own
-- locations, as without the table.
--
-- The rules keep nginx's semantics of the servers and locations they replace: the host
-- exactly, then the longest wildcard of any depth (a Gateway API's, nginx's `*.` form,
-- pushed as **.example.com: b.a.example.com -> **.a.example.com, then **.example.com,
-- then **.com), then its one-label wildcard (a.example.com -> *.example.com, as the
-- rendered `~^[^.]+\.example\.com$`, a regex, which nginx tries last); an exact path,
-- then the longest prefix (`location ^~`), compared on the normalized URI ($uri) as
-- plain strings, never as Lua patterns. The request then goes to the internal location
-- /_edgeagent-route, which proxies its $request_uri (what a rendered location sends) with
-- the http-level proxy headers, timeouts and body size, as every rendered location does.
local _M = {}

local routes = ngx.shared.edgeagent_routes

-- Per worker: host -> { raw = the dict's text, exact = { path = target }, prefixes =
-- { { path, target }, ... } longest first }, parsed again only when the text changes, and
-- dropped when the dict no longer holds the host (workers live across table changes: the
-- cache must not keep every host ever routed).
local cache = {}

local function parse(raw)
    local exact, prefixes = {}, {}
    for match, path, target in raw:gmatch("(%S+) (%S+) (%S+)") do
        if match == "exact" then
            exact[path] = target
        else
            prefixes[#prefixes + 1] = { path, target }
        end
    end
    return { raw = raw, exact = exact, prefixes = prefixes }
end

-- The rules the table holds under a name; nil: none.
local function entry_of(key)
    local raw = routes:get("r:" .. key)
    if raw == nil then
        cache[key] = nil
        return nil
    end
    local entry = cache[key]
    if entry == nil or entry.raw ~= raw then
        entry = parse(raw)
        cache[key] = entry
    end
    return entry
end

-- The rules of a name, in nginx's order of server names (above); nil: not in the table.
local function rules_of(host)
    -- A table name with a star is a wildcard's, never the exact host's: nginx matches a
    -- Host such as `*.a.example.com` by its labels, as any other.
    local entry = not host:find("*", 1, true) and entry_of(host) or nil
    local first = host:find(".", 1, true)
    if entry ~= nil or first == nil or first == 1 then
        return entry
    end
    local dot = first
    while dot ~= nil do
        entry = entry_of("**" .. host:sub(dot))
        if entry ~= nil then
            return entry
        end
        dot = host:find(".", dot + 1, true)
    end
    return entry_of("*" .. host:sub(first))
end

local function target_of(entry, uri)
    local target = entry.exact[uri]
    if target ~= nil then
        return target
    end
    for _, prefix in ipairs(entry.prefixes) do
        local path = prefix[1]
        if uri:sub(1, #path) == path then
            return prefix[2]
        end
    end
    return nil
end

function _M.route()
    -- Table hosts are served over plain HTTP only; internal redirects and subrequests
    -- were routed already.
    if ngx.var.https == "on" or ngx.req.is_internal() then
        return
    end
    local entry = rules_of(ngx.var.host)
    if entry == nil then
        return
    end
    local target = target_of(entry, ngx.var.uri)
    if target == nil then
        return ngx.exit(ngx.HTTP_NOT_FOUND)
    end
    if target:sub(1, 1) == "!" then
        return ngx.exit(tonumber(target:sub(2)))
    end
    ngx.var.edgeagent_backend = target
    return ngx.exec("/_edgeagent-route")
end

return _M
