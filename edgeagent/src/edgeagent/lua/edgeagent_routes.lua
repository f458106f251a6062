-- The route table (server_rewrite_by_lua of the default server): the hosts that need no
-- server block of their own (edgeagent's route_table.py) are routed here, from the rules
-- edgeagent pushed (`route` records, edgeagent_state.lua), so adding, changing or
-- removing them needs no reload. nginx gives the default server every name no server
-- block claims; a name the table does not hold goes on to the default server's own
-- locations, as without the table.
--
-- The rules keep the semantics of the servers and locations they replace: the host
-- exactly, then the wildcard of the longest suffix that matches, its one-label one first
-- (an Ingress's, b.a.example.com -> *.a.example.com), then those of any depth (a Gateway
-- API's, pushed as **.example.com: **.a.example.com, then **.example.com, then **.com),
-- as the rendered server names order them (edgeagent's render.in_name_order); an exact path,
-- then the longest prefix (`location ^~`), compared on the normalized URI ($uri) as
-- plain strings, never as Lua patterns. The request then goes to the internal location
-- /_edgeagent-route, which proxies its $request_uri (what a rendered location sends) with
-- the http-level proxy headers, timeouts and body size, as every rendered location does.
--
-- A TLS host (its rules' targets start with + or >) is answered over HTTPS too: the
-- default server's handshake served its certificate by SNI (edgeagent_certificates.lua),
-- and $edgeagent_route_tls gives its answers the TLS hosts' HSTS (edge.conf's
-- $edgeagent_hsts_unpinned). Over plain HTTP a `>` rule answers 308 to https with the
-- URI kept, as its server's ssl-redirect; a host of plain HTTP is not routed over HTTPS.
local _M = {}

local routes = ngx.shared.edgeagent_routes

-- Per worker: host -> { raw = the dict's text, tls = a TLS host, exact = { path = rule },
-- prefixes = { { path, rule }, ... } longest first }, each rule { target = its TARGET
-- less + or >, redirect = plain HTTP answers 308 }, parsed again only when the text
-- changes, and dropped when the dict no longer holds the host (workers live across table
-- changes: the cache must not keep every host ever routed).
local cache = {}

local function parse(raw)
    local exact, prefixes, tls = {}, {}, false
    for match, path, target in raw:gmatch("(%S+) (%S+) (%S+)") do
        local scheme = target:sub(1, 1)
        local rule = { target = target, redirect = scheme == ">" }
        if scheme == "+" or scheme == ">" then
            tls, rule.target = true, target:sub(2)
        end
        if match == "exact" then
            exact[path] = rule
        else
            prefixes[#prefixes + 1] = { path, rule }
        end
    end
    return { raw = raw, tls = tls, exact = exact, prefixes = prefixes }
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
        -- The host as its Ingress writes it, for the request counters: a Gateway's
        -- any-depth wildcard is pushed as **.example.com but written *.example.com.
        entry.name = key:sub(1, 2) == "**" and key:sub(2) or key
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
    entry = entry_of("*" .. host:sub(first))
    local dot = first
    while entry == nil and dot ~= nil do
        entry = entry_of("**" .. host:sub(dot))
        dot = host:find(".", dot + 1, true)
    end
    return entry
end

local function rule_of(entry, uri)
    local rule = entry.exact[uri]
    if rule ~= nil then
        return rule
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
    -- Internal redirects and subrequests were routed already.
    if ngx.req.is_internal() then
        return
    end
    local entry = rules_of(ngx.var.host)
    local https = ngx.var.https == "on"
    if entry == nil or (https and not entry.tls) then
        return
    end
    if entry.tls then
        ngx.var.edgeagent_route_tls = "1"
    end
    local rule = rule_of(entry, ngx.var.uri)
    if rule == nil then
        return ngx.exit(ngx.HTTP_NOT_FOUND)
    end
    if rule.redirect and not https then
        return ngx.redirect("https://" .. ngx.var.host .. ngx.var.request_uri, 308)
    end
    local target = rule.target
    if target:sub(1, 1) == "!" then
        return ngx.exit(tonumber(target:sub(2)))
    end
    ngx.var.edgeagent_backend = target
    -- The counters' host (edgeagent_requests.lua): the table's name, never the client's
    -- Host, which a wildcard would turn into one label set per made-up name.
    ngx.var.edgeagent_route_host = entry.name
    return ngx.exec("/_edgeagent-route")
end

return _M
