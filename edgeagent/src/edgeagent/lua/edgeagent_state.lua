-- The dynamic state of the edge: the peers of every backend and the TLS certificates,
-- in two lua_shared_dicts that every worker reads and that survive reloads (HUP).
--
-- edgeagent sends it as text (the control endpoint, edgeagent_control.lua) and writes
-- the same text to state.txt, which init() loads so that a fresh nginx serves the last
-- pushed state before the agent speaks. Text rather than JSON because Debian's Lua
-- module comes without cjson. One record per line, fields separated by one space:
--
--   edgeagent-dynamic 1            format marker, always the first line
--   version N                      grows with every push; one not above the current is refused
--   scope full|delta               full: backends, certificates and hosts not listed go away
--   backend NAME [PEER WEIGHT]...  PEER is ipv4:port or [ipv6]:port; no peer = no ready
--                                  endpoint (the location answers 503)
--   certificate KEY BASE64         PEM certificate chain and private key
--   host [ADDRESS/]NAME KEY        the TLS host NAME is served with certificate KEY in
--                                  the certificate scope ADDRESS (a dedicated Gateway's
--                                  servers), or without one on the edge's own; no KEY
--                                  (a delta): NAME has no certificate there any more;
--                                  NAME "**.x" is a wildcard of any depth; "ADDRESS/"
--                                  without NAME: the scope's default server's pair
--   route HOST [MATCH PATH TARGET]...
--                                  a host of the route table (edgeagent_routes.lua): its
--                                  rules in order, MATCH exact or prefix, TARGET a backend
--                                  or !STATUS; no rule: the host leaves the table. HOST
--                                  "**.x" is a wildcard of any depth, "*.x" of one label.
--                                  A TLS host's TARGETs all start with + (HTTPS too) or
--                                  > (and plain HTTP answers 308 to https)
--
-- Every field is checked before anything is applied, and a push applies whole or not
-- at all, so a malformed or hostile body changes nothing.
local ssl = require("ngx.ssl")

local _M = {}

local backends = ngx.shared.edgeagent_backends
local certificates = ngx.shared.edgeagent_certificates
local routes = ngx.shared.edgeagent_routes

local FORMAT = "edgeagent-dynamic 1"
-- Versions are microseconds (edgeagent's clock, kept growing): below 2^53, exact in Lua.
local MAX_VERSION = 2 ^ 53
local MAX_WEIGHT = 100
local NAME = "^[%w][%w%-%._]*$"
local HOST = "^[%w%*][%w%-%.]*$"
-- A certificate scope (edgeagent_certificates.lua): an IPv4 or an IPv6 address.
local function valid_scope(scope)
    return #scope <= 45
        and (scope:match("^%d+%.%d+%.%d+%.%d+$") or scope:match("^[%x%.]*:[%x:%.]*$"))
end
local BASE64 = "^[%w%+/]+=*$"
-- The path grammar of edgeagent (grammar.PATH): no space, quote, `%`, `$`, `?` or `#`.
local PATH = "^/[%w%-%._~/!%*%+,=:@&]*$"
local PATH_MAX = 2048
-- A route host's name after its wildcard's "*." or "**." if any.
local ROUTE_NAME = "^[%w][%w%-%.]*$"

-- A path as the grammar allows: also no `//` and no `.` or `..` segment.
local function valid_path(path)
    if #path > PATH_MAX or not path:match(PATH) or path:find("//", 1, true) then
        return false
    end
    local segments = path .. "/"
    return not (segments:find("/./", 1, true) or segments:find("/../", 1, true))
end

-- "MATCH PATH TARGET ..." -> true, or false and why.
local function valid_rules(fields)
    if #fields % 3 ~= 0 then
        return false, "rules come as MATCH PATH TARGET"
    end
    local tls = fields[3] ~= nil and fields[3]:match("^[+>]") ~= nil
    for i = 1, #fields, 3 do
        local match, path, target = fields[i], fields[i + 1], fields[i + 2]
        if (target:match("^[+>]") ~= nil) ~= tls then
            return false, "a TLS host's targets all start with + or >"
        end
        if tls then
            target = target:sub(2)
        end
        if match ~= "exact" and match ~= "prefix" then
            return false, "match is exact or prefix"
        end
        if not valid_path(path) then
            return false, "bad path"
        end
        if not (target:match("^![1-5]%d%d$") or (target:match(NAME) and #target <= 300)) then
            return false, "bad target"
        end
    end
    return true
end

local function valid_peer(peer)
    local a, b, c, d, port = peer:match("^(%d+)%.(%d+)%.(%d+)%.(%d+):(%d+)$")
    if a then
        for _, octet in ipairs({ a, b, c, d }) do
            if #octet > 3 or tonumber(octet) > 255 then
                return false
            end
        end
    else
        port = peer:match("^%[[%x:%.]+%]:(%d+)$")
    end
    local number = port and #port <= 5 and tonumber(port)
    return number ~= nil and number >= 1 and number <= 65535
end

-- "PEER WEIGHT PEER WEIGHT ..." -> true, or false and why.
local function valid_peers(fields)
    if #fields % 2 ~= 0 then
        return false, "peers come as PEER WEIGHT pairs"
    end
    for i = 1, #fields, 2 do
        if not valid_peer(fields[i]) then
            return false, "bad peer " .. fields[i]:sub(1, 60)
        end
        local weight = fields[i + 1]:match("^%d%d?%d?$") and tonumber(fields[i + 1])
        if not weight or weight < 1 or weight > MAX_WEIGHT then
            return false, "bad weight for " .. fields[i]
        end
    end
    return true
end

-- text -> state table, or nil and the reason. The reason names the line, never echoes it
-- whole (it may be an attacker's text).
function _M.parse(text)
    if type(text) ~= "string" or text:sub(-1) ~= "\n" then
        return nil, "the body must be lines ending in a newline"
    end
    local state = { backends = {}, certificates = {}, hosts = {}, routes = {} }
    local number = 0
    for line in text:gmatch("([^\n]*)\n") do
        number = number + 1
        local fields = {}
        for field in line:gmatch("[^ ]+") do
            fields[#fields + 1] = field
        end
        local where = "line " .. number .. ": "
        if table.concat(fields, " ") ~= line or #fields == 0 then
            return nil, where .. "fields must be separated by exactly one space"
        end
        local kind = fields[1]
        if number == 1 then
            if line ~= FORMAT then
                return nil, where .. "expected '" .. FORMAT .. "'"
            end
        elseif kind == "version" and #fields == 2 then
            local version = fields[2]:match("^%d+$") and tonumber(fields[2])
            if not version or version >= MAX_VERSION or state.version then
                return nil, where .. "bad or repeated version"
            end
            state.version = version
        elseif kind == "scope" and #fields == 2 and state.full == nil then
            if fields[2] ~= "full" and fields[2] ~= "delta" then
                return nil, where .. "scope is full or delta"
            end
            state.full = fields[2] == "full"
        elseif kind == "backend" and #fields >= 2 then
            local name = fields[2]
            if not name:match(NAME) or #name > 300 or state.backends[name] then
                return nil, where .. "bad or repeated backend name"
            end
            local peers = {} -- (not unpack(): it fails on a line of many thousand fields)
            for i = 3, #fields do
                peers[#peers + 1] = fields[i]
            end
            local ok, why = valid_peers(peers)
            if not ok then
                return nil, where .. why
            end
            state.backends[name] = table.concat(peers, " ")
        elseif kind == "certificate" and #fields == 3 then
            local key = fields[2]
            if not key:match(NAME) or not fields[3]:match(BASE64) or state.certificates[key] then
                return nil, where .. "bad or repeated certificate"
            end
            local pem = ngx.decode_base64(fields[3])
            if not pem then
                return nil, where .. "certificate is not base64"
            end
            state.certificates[key] = pem
        elseif kind == "host" and (#fields == 3 or (#fields == 2 and state.full == false)) then
            local scope, name = fields[2]:match("^([^/]*)/(.*)$")
            name = name or fields[2]
            -- "**.x" a wildcard of any depth (edgeagent_certificates.lua), "*.x" of one label
            if name:sub(1, 3) == "**." then
                name = name:sub(2)
            end
            -- "ADDRESS/" without a name: the scope's default server's pair
            local named = name:match(HOST) or (scope and name == "")
            if (scope and not valid_scope(scope)) or not named
                or (fields[3] and not fields[3]:match(NAME)) then
                return nil, where .. "bad host record"
            end
            state.hosts[fields[2]] = fields[3] or ""
        elseif kind == "route" and #fields >= 2 then
            local host = fields[2]
            -- "*." a one-label wildcard, "**." one of any depth (edgeagent_routes.lua).
            local stars = #host:match("^%**")
            local name = host:sub(stars > 0 and stars + 2 or 1)
            if stars > 2 or (stars > 0 and host:sub(stars + 1, stars + 1) ~= ".")
                or not name:match(ROUTE_NAME) or #host > 253 or state.routes[host] then
                return nil, where .. "bad or repeated route host"
            end
            local rules = {}
            for i = 3, #fields do
                rules[#rules + 1] = fields[i]
            end
            local ok, why = valid_rules(rules)
            if not ok then
                return nil, where .. why
            end
            state.routes[host] = table.concat(rules, " ")
        else
            return nil, where .. "unknown record"
        end
    end
    if not state.version or state.full == nil then
        return nil, "version and scope are required"
    end
    return state
end

-- Parse every certificate once here, so that a pair OpenSSL refuses is reported to the
-- agent and the previous pair keeps serving.
function _M.check_certificates(state)
    for key, pem in pairs(state.certificates) do
        local cert, err = ssl.parse_pem_cert(pem)
        local private_key
        if cert then
            private_key, err = ssl.parse_pem_priv_key(pem)
        end
        if not private_key then
            return nil, "certificate " .. key .. ": " .. tostring(err)
        end
    end
    return true
end

function _M.version()
    return backends:get("version") or 0
end

-- Keys of `dict` under `prefix` that `keep` does not list (for a full push).
local function remove_others(dict, prefix, keep)
    for _, key in ipairs(dict:get_keys(0)) do
        if key:sub(1, #prefix) == prefix and keep[key:sub(#prefix + 1)] == nil then
            dict:delete(key)
        end
    end
end

-- Routes a full state does not list expire after ROUTE_GRACE seconds rather than at
-- once: a host leaves the table for a server block of a new generation, and the old
-- workers, which have none, may take a connection for a moment after the reload.
local ROUTE_GRACE = 10

local function retire_other_routes(keep)
    for _, key in ipairs(routes:get_keys(0)) do
        if key:sub(1, 2) == "r:" and keep[key:sub(3)] == nil and routes:ttl(key) == 0 then
            routes:expire(key, ROUTE_GRACE)
        end
    end
end

-- Apply a parsed and checked state. Returns true, or nil, an HTTP status and why.
-- safe_set: a full dict must fail the push, never evict the peers of another backend.
-- `from_file`: state.txt, loaded by init(). It holds no key material, so the dicts are
-- "complete" only after a full push of the agent; until then a delta is refused (412):
-- applied on top of a restarted nginx's state.txt, it would leave every certificate and
-- host it does not repeat unpushed, and the agent, its version accepted, would never know.
function _M.apply(state, from_file)
    if state.version <= _M.version() then
        local why = string.format("version %d is not above %d", state.version, _M.version())
        return nil, ngx.HTTP_CONFLICT, why
    end
    if not state.full and not backends:get("complete") then
        return nil, 412, "no full push since nginx loaded state.txt: push the whole state"
    end
    local writes = {}
    for name, peers in pairs(state.backends) do
        writes[#writes + 1] = { backends, "b:" .. name, peers }
    end
    for key, pem in pairs(state.certificates) do
        writes[#writes + 1] = { certificates, "c:" .. key, pem }
    end
    for host, key in pairs(state.hosts) do
        -- nil: a delta takes the host's certificate away
        writes[#writes + 1] = { certificates, "h:" .. host, key ~= "" and key or nil }
    end
    for host, rules in pairs(state.routes) do
        -- nil: a delta takes the host out of the table
        writes[#writes + 1] = { routes, "r:" .. host, rules ~= "" and rules or nil }
    end
    for _, write in ipairs(writes) do
        local ok, err = write[1]:safe_set(write[2], write[3])
        if not ok then
            return nil, 507, "shared dict: " .. tostring(err)
        end
    end
    if state.full then
        remove_others(backends, "b:", state.backends)
        -- state.txt holds no pair but those init() read for hosts that had none: the
        -- pushed ones stay, for the route table's hosts, which no static line serves.
        if not from_file then
            remove_others(certificates, "c:", state.certificates)
            remove_others(certificates, "h:", state.hosts)
        end
        retire_other_routes(state.routes)
    end
    local ok, err = backends:safe_set("version", state.version)
    if ok and state.full then
        ok, err = backends:safe_set("complete", not from_file)
    end
    if not ok then
        return nil, 507, "shared dict: " .. tostring(err)
    end
    return true
end

-- Read a whole file, or nil and why.
local function read(path)
    local file, err = io.open(path, "rb")
    if not file then
        return nil, err
    end
    local data = file:read("*a")
    file:close()
    return data
end

-- init_by_lua (the master, as root, at start and at every reload): read the control
-- token, and load state.txt unless the shared dicts, kept across a reload, hold a
-- newer push (its version line is read first: a reload then parses nothing). A missing
-- or short token refuses the configuration (nginx -t fails with this message); a bad
-- state file is logged and the pushes of the agent repair it. The agent's own nginx -t
-- sets EDGEAGENT_NGINX_TEST: peers do not make a configuration valid or not, and parsing
-- 10k backends would cost every validation about a second.
function _M.init(directory)
    local token = read(directory .. "/control.token")
    token = token and token:match("^(%x+)\n?$")
    if not token or #token < 32 then
        error("edgeagent: " .. directory .. "/control.token must hold at least 32 hex digits")
    end
    _M.token = token
    if os.getenv("EDGEAGENT_NGINX_TEST") then
        return
    end
    local text = read(directory .. "/state.txt")
    local version = text
        and text:sub(1, #FORMAT + 1) == FORMAT .. "\n"
        and tonumber(text:match("^version (%d+)\n", #FORMAT + 2))
    if not text or (version and version <= _M.version()) then
        return
    end
    local state, err = _M.parse(text)
    if state then
        -- The pairs of hosts the dict has none for (a fresh nginx): from the files the
        -- agent wrote before state.txt. A missing or unreadable file leaves the host the
        -- default pair, and the rest of the state loads.
        for _, key in pairs(state.hosts) do
            local missing = not (state.certificates[key] or certificates:get("c:" .. key))
            if key ~= "" and missing then
                local pem = read(directory .. "/certs/" .. key .. ".pem")
                if pem and ssl.parse_pem_cert(pem) and ssl.parse_pem_priv_key(pem) then
                    state.certificates[key] = pem
                end
            end
        end
        local ok
        ok, err = _M.check_certificates(state)
        if ok and state.version > _M.version() then
            ok, _, err = _M.apply(state, true)
        end
    end
    if err then
        ngx.log(ngx.ERR, "edgeagent: ", directory, "/state.txt not loaded: ", err)
    end
end

return _M
