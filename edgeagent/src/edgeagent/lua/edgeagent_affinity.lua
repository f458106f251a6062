-- Cookie session affinity (annotations/affinity.py): a location with `affinity: cookie`
-- sets $edgeagent_affinity to its settings ("mode,cookie,path,domain,max-age,expires,
-- secure,samesite,conditional-samesite-none,change-on-failure"). The access phase
-- (choose) finds the endpoint the request's cookie names, or picks one and a new cookie;
-- the balancer sends the first try there (first), and after a failure moves the session
-- only with change-on-failure (retry); the header filter of the location sets the cookie
-- (set_cookie), the only phase after the balancer's that may add a header.
local _M = {}

-- Points of the heaviest endpoint on the ring of the balanced mode (the others get their
-- share of it by weight): enough for an even share between a few dozen endpoints.
local RING_POINTS = 160
-- Keys drawn after a failure before giving up moving the session (ingress-nginx's count).
local RETRY_KEYS = 20

-- Per worker: the settings text -> its fields. A handful of distinct texts per config.
local specs = {}

local function spec_of(text)
    local spec = specs[text]
    if spec then
        return spec
    end
    local f = {}
    for value in (text .. ","):gmatch("([^,]*),") do
        f[#f + 1] = value
    end
    spec = {
        persistent = f[1] == "persistent",
        cookie = f[2],
        path = f[3],
        domain = f[4],
        max_age = tonumber(f[5]),
        expires = tonumber(f[6]),
        secure = f[7] == "1",
        same_site = f[8] ~= "" and f[8] or nil,
        conditional_same_site_none = f[9] == "1",
        change_on_failure = f[10] == "1",
    }
    specs[text] = spec
    return spec
end

-- The balanced mode's consistent hash ring of a backend's peers, kept with the peer list
-- (the balancer rebuilds that entry when the peers change).
local function ring_of(entry)
    local ring = entry.affinity_ring
    if ring then
        return ring
    end
    ring = {}
    local heaviest = 1
    for _, peer in ipairs(entry.peers) do
        heaviest = math.max(heaviest, peer.weight)
    end
    for _, peer in ipairs(entry.peers) do
        for i = 1, math.max(1, math.floor(RING_POINTS * peer.weight / heaviest)) do
            ring[#ring + 1] = { hash = ngx.crc32_long(peer.peer .. "#" .. i), peer = peer }
        end
    end
    table.sort(ring, function(a, b)
        return a.hash < b.hash
    end)
    entry.affinity_ring = ring
    return ring
end

local function on_ring(entry, key)
    local ring = ring_of(entry)
    local hash = ngx.crc32_long(key)
    local low, high = 1, #ring
    if ring[high].hash < hash then
        return ring[1].peer
    end
    while low < high do
        local middle = math.floor((low + high) / 2)
        if ring[middle].hash < hash then
            low = middle + 1
        else
            high = middle
        end
    end
    return ring[low].peer
end

-- The persistent mode's cookie: a digest of the backend and the peer, which names the
-- peer without showing its address.
local function key_of(name, peer)
    return ngx.md5(name .. " " .. peer.peer):sub(1, 16)
end

local function by_key(name, entry, key)
    local keys = entry.affinity_keys
    if keys == nil then
        keys = {}
        for _, peer in ipairs(entry.peers) do
            keys[key_of(name, peer)] = peer
        end
        entry.affinity_keys = keys
    end
    return keys[key]
end

-- A fresh random key ($request_id: 128 bits from nginx's random source).
local function random_key(i)
    return ngx.md5(ngx.var.request_id .. i):sub(1, 16)
end

-- access_by_lua, after the backend's check: the endpoint of this request's session.
-- `pick_new` is the balancer's own choice, for the persistent mode's new sessions.
function _M.choose(name, entry, text, pick_new)
    local spec = spec_of(text)
    local key = ngx.var["cookie_" .. spec.cookie]
    local peer
    if key and key:match("^%x+$") then
        if spec.persistent then
            peer = by_key(name, entry, key)
        else
            peer = on_ring(entry, key)
        end
    end
    local state = { spec = spec, peer = peer, name = name }
    if peer == nil then
        if spec.persistent then
            state.peer = pick_new()
            state.key = state.peer and key_of(name, state.peer)
        else
            state.key = random_key(0)
            state.peer = on_ring(entry, state.key)
        end
    end
    ngx.ctx.edgeagent_affinity = state
end

-- balancer_by_lua, first try: the session's endpoint.
function _M.first()
    local state = ngx.ctx.edgeagent_affinity
    return state and state.peer
end

-- balancer_by_lua, after a failure: with change-on-failure, a new endpoint not tried yet
-- and its cookie; otherwise nil (the balancer retries elsewhere for this request only,
-- and the cookie keeps naming the endpoint).
function _M.retry(entry, tried, pick_new)
    local state = ngx.ctx.edgeagent_affinity
    if state == nil or not state.spec.change_on_failure then
        return nil
    end
    local peer
    if state.spec.persistent then
        peer = pick_new()
        state.key = peer and key_of(state.name, peer)
    else
        for i = 1, RETRY_KEYS do
            local key = random_key(i)
            local candidate = on_ring(entry, key)
            if not tried[candidate.peer] then
                peer, state.key = candidate, key
                break
            end
        end
    end
    return peer
end

-- Browsers that reject or mishandle SameSite=None (ingress-nginx's list).
local function same_site_none_compatible(agent)
    if agent == nil then
        return true
    end
    if agent:find("Chrome/[456]") or agent:find("CPU iPhone OS 12", 1, true)
        or agent:find("iPad; CPU OS 12", 1, true) then
        return false
    end
    return not (agent:find("Macintosh", 1, true) and agent:find("Intel Mac OS X 10_14", 1, true)
        and agent:find("Safari", 1, true) and not agent:find("Chrome", 1, true))
end

-- header_filter_by_lua of affinity locations: the cookie of a new session, or of one
-- moved after a failure, next to the backend's own cookies.
function _M.set_cookie()
    local state = ngx.ctx.edgeagent_affinity
    if state == nil or state.key == nil then
        return
    end
    local spec = state.spec
    local parts = { spec.cookie .. "=" .. state.key }
    if spec.expires then
        parts[#parts + 1] = "Expires=" .. ngx.cookie_time(ngx.time() + spec.expires)
    end
    if spec.max_age then
        parts[#parts + 1] = "Max-Age=" .. spec.max_age
    end
    if spec.domain ~= "" then
        parts[#parts + 1] = "Domain=" .. spec.domain
    end
    parts[#parts + 1] = "Path=" .. spec.path
    if spec.secure then
        parts[#parts + 1] = "Secure"
    end
    parts[#parts + 1] = "HttpOnly"
    local same_site = spec.same_site
    if same_site == "None" and spec.conditional_same_site_none
        and not same_site_none_compatible(ngx.var.http_user_agent) then
        same_site = nil
    end
    if same_site then
        parts[#parts + 1] = "SameSite=" .. same_site
    end
    local cookie = table.concat(parts, "; ")
    local existing = ngx.header["Set-Cookie"]
    if type(existing) == "table" then
        existing[#existing + 1] = cookie
        ngx.header["Set-Cookie"] = existing
    elseif existing then
        ngx.header["Set-Cookie"] = { existing, cookie }
    else
        ngx.header["Set-Cookie"] = cookie
    end
end

return _M
