-- One upstream for every Service backend: each location sets $edgeagent_backend to its
-- backend's name and proxies to `upstream edgeagent_dynamic`, whose balancer_by_lua
-- calls balance() to pick a peer of that backend from the shared dict. Peers therefore
-- change without a reload, and the upstream's keepalive pool still reuses connections
-- (nginx matches an idle connection by the peer's address).
local balancer = require("ngx.balancer")
local affinity = require("edgeagent_affinity")

local _M = {}

local backends = ngx.shared.edgeagent_backends

-- As nginx's max_fails=1 fail_timeout=10s: a peer that failed (connect error or
-- timeout) gets no new request for this long, in any worker.
local FAIL_TIMEOUT = 10

-- Per worker: backend name -> { raw = the dict's text, peers = {...} }. Rebuilt when the
-- dict's text for the backend changes; the `current` counters of smooth weighted
-- round-robin live in it, so a change restarts the rotation.
local cache = {}

local function parse(raw)
    local peers = {}
    for peer, weight in raw:gmatch("(%S+) (%d+)") do
        local host, port = peer:match("^(.+):(%d+)$")
        weight = tonumber(weight)
        peers[#peers + 1] = { peer = peer, host = host, port = tonumber(port), weight = weight, current = 0 }
    end
    return { raw = raw, peers = peers }
end

local function entry_of(name)
    local raw = name and backends:get("b:" .. name)
    if raw == nil then
        return nil
    end
    local entry = cache[name]
    if entry == nil or entry.raw ~= raw then
        entry = parse(raw)
        cache[name] = entry
    end
    return entry
end

local pick -- below: the round-robin, which new affinity sessions start from too

-- default-backend (annotations/errorpages.py): the location's fallback backend takes a
-- request its own backend has no ready peer for, told why with ingress-nginx's headers
-- (the static mode's edge.conf writes the same ones). True if it did.
local function fall_back(name)
    local fallback = ngx.var.edgeagent_fallback
    if fallback == nil or fallback == "" or fallback == name then
        return false
    end
    local entry = entry_of(fallback)
    if entry == nil or #entry.peers == 0 then
        return false
    end
    ngx.var.edgeagent_backend = fallback
    local var = ngx.var
    ngx.req.set_header("X-Code", "503")
    ngx.req.set_header("X-Format", var.http_accept)
    ngx.req.set_header("X-Namespace", var.edgeagent_namespace)
    ngx.req.set_header("X-Ingress-Name", var.edgeagent_ingress)
    ngx.req.set_header("X-Service-Name", var.edgeagent_service)
    ngx.req.set_header("X-Service-Port", var.edgeagent_service_port)
    ngx.req.set_header("X-Request-ID", var.edgeagent_request_id)
    return true
end

-- access_by_lua (http level, every request): a backend without a ready peer answers 503
-- here, as the static mode's `return 503` does (or its default backend does); the
-- balancer phase could only answer 502. A location with session affinity then finds the
-- request's endpoint.
function _M.check()
    local name = ngx.var.edgeagent_backend
    if name == nil or name == "" then
        return
    end
    local entry = entry_of(name)
    if entry == nil or #entry.peers == 0 then
        if fall_back(name) then
            return
        end
        return ngx.exit(ngx.HTTP_SERVICE_UNAVAILABLE)
    end
    local sticky = ngx.var.edgeagent_affinity
    if sticky ~= nil and sticky ~= "" then
        affinity.choose(name, entry, sticky, function()
            return pick(name, entry, {}, true) or pick(name, entry, {}, false)
        end)
    end
end

local function down_key(name, peer)
    return "d:" .. name .. " " .. peer.peer
end

-- Smooth weighted round-robin (nginx's own algorithm) over the peers that are neither
-- down nor already tried by this request; if every peer is down, down marks are ignored
-- (nginx does the same rather than refuse the request). As in nginx, the pick pays the
-- weights of the peers considered only: paying those of the skipped ones too would skew
-- the weights while a peer is down, and send it a burst of requests when it is back.
function pick(name, entry, tried, respect_down)
    local best, total = nil, 0
    for _, peer in ipairs(entry.peers) do
        if not tried[peer.peer] and not (respect_down and backends:get(down_key(name, peer))) then
            peer.current = peer.current + peer.weight
            total = total + peer.weight
            if best == nil or peer.current > best.current then
                best = peer
            end
        end
    end
    if best then
        best.current = best.current - total
    end
    return best
end

-- upstream-hash-by: consistent hashing as nginx's `hash KEY consistent` (ketama): each
-- peer owns POINTS_PER_WEIGHT points per unit of weight on a ring of crc32 values; a key
-- goes to the owner of the first point at or after its own crc32, so a peer that comes
-- or goes moves only the keys of its points. The ring is built once per peer list.
local POINTS_PER_WEIGHT = 160

local function ring_of(entry)
    if entry.ring == nil then
        local ring = {}
        for _, peer in ipairs(entry.peers) do
            for point = 1, POINTS_PER_WEIGHT * peer.weight do
                ring[#ring + 1] = { hash = ngx.crc32_long(peer.peer .. "-" .. point), peer = peer }
            end
        end
        table.sort(ring, function(a, b)
            return a.hash < b.hash or (a.hash == b.hash and a.peer.peer < b.peer.peer)
        end)
        entry.ring = ring
    end
    return entry.ring
end

-- The first point at or after `hash` (binary search), wrapping around.
local function first_point(ring, hash)
    local low, high = 1, #ring
    while low < high do
        local middle = math.floor((low + high) / 2)
        if ring[middle].hash < hash then
            low = middle + 1
        else
            high = middle
        end
    end
    if ring[low].hash < hash then
        return 1
    end
    return low
end

-- The key's peer, or on a retry the next one along the ring that is neither tried nor
-- (with respect_down) marked down.
local function pick_hashed(name, entry, key, tried, respect_down)
    local ring = ring_of(entry)
    local start = first_point(ring, ngx.crc32_long(key))
    for step = 0, #ring - 1 do
        local peer = ring[(start - 1 + step) % #ring + 1].peer
        if not tried[peer.peer] and not (respect_down and backends:get(down_key(name, peer))) then
            return peer
        end
    end
    return nil
end

-- balancer_by_lua: called for the first try and again for each retry
-- (proxy_next_upstream: error and timeout, as in the static mode). `mirror`: the backend
-- a mirror-target's upstream block names (annotations/mirror.py); a mirror subrequest
-- shares the variables of the request it copies, so none of them may say where it goes.
function _M.balance(mirror)
    local ctx = ngx.ctx
    local name = mirror or ngx.var.edgeagent_backend
    local entry = entry_of(name)
    if entry == nil or #entry.peers == 0 then
        return ngx.exit(ngx.ERROR) -- removed since the access phase: 502
    end
    local tried = ctx.edgeagent_tried
    local sticky
    if tried == nil then
        tried = {}
        ctx.edgeagent_tried = tried
        if #entry.peers > 1 then
            balancer.set_more_tries(#entry.peers - 1)
        end
        sticky = affinity.first()
    else
        local state = balancer.get_last_failure()
        if state == "failed" and ctx.edgeagent_peer then
            -- safe_set: a full dict drops the mark, never another backend's peers.
            backends:safe_set(down_key(name, ctx.edgeagent_peer), true, FAIL_TIMEOUT)
        end
        sticky = affinity.retry(entry, tried, function()
            return pick(name, entry, tried, true) or pick(name, entry, tried, false)
        end)
    end
    -- Last, a peer already tried: nginx calls again after all were tried only when it gave
    -- the request one more try, because a cached keep-alive connection failed (a backend
    -- closing it idle); the static upstreams then retry on a new connection too.
    local key = mirror == nil and ngx.var.edgeagent_hash_key or nil
    local peer = sticky
    if peer == nil and key ~= nil and key ~= "" then
        peer = pick_hashed(name, entry, key, tried, true)
            or pick_hashed(name, entry, key, tried, false)
            or pick_hashed(name, entry, key, {}, false)
    elseif peer == nil then
        peer = pick(name, entry, tried, true)
            or pick(name, entry, tried, false)
            or pick(name, entry, {}, false)
    end
    if peer == nil then
        return ngx.exit(ngx.ERROR)
    end
    tried[peer.peer] = true
    ctx.edgeagent_peer = peer
    local ok, err = balancer.set_current_peer(peer.host, peer.port)
    if not ok then
        ngx.log(ngx.ERR, "edgeagent: cannot use peer ", peer.peer, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

return _M
