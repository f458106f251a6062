-- ssl_certificate_by_lua (every TLS server): serve the pair edgeagent pushed last for the
-- requested name in the server's certificate scope: "" on the edge's own addresses, a
-- dedicated Gateway's address on its (render.certificate_scope), so that a name two
-- tenants serve on different addresses presents each one's pair on its own addresses
-- only. In a Gateway's scope, a name without a pair of its own, and a handshake without
-- SNI, are served the scope's default server's pair ("h:ADDRESS/", its HTTPS listener
-- without hostname's) if pushed. The static ssl_certificate lines of the rendered
-- configuration stay in place: a name edgeagent has not pushed (yet) in that scope
-- keeps them.
local ssl = require("ngx.ssl")

local _M = {}

local certificates = ngx.shared.edgeagent_certificates

-- Per worker: certificate key -> { pem = the dict's text, cert = ..., key = ... },
-- parsed again only when the pushed PEM changes.
local cache = {}

-- The certificate key of a name in a scope's hosts (`prefix`): its exact host, else its
-- one-label wildcard (a.b.example.com -> *.b.example.com), else the wildcard of any depth
-- (a Gateway API's, "**.": edgeagent_state.lua) of the longest suffix, as the server names
-- of the configuration and the route table match.
local function key_of(prefix, name)
    local key = certificates:get(prefix .. name)
    local dot = name:find(".", 1, true)
    if key == nil and dot then
        key = certificates:get(prefix .. "*" .. name:sub(dot))
    end
    while key == nil and dot do
        key = certificates:get(prefix .. "**" .. name:sub(dot))
        dot = name:find(".", dot + 1, true)
    end
    return key
end

-- The dict's host keys (edgeagent_state.lua's `host [ADDRESS/]NAME KEY`): "h:NAME" in the
-- scope "", "h:ADDRESS/NAME" in the scope ADDRESS. No scope (an edge.conf rendered before
-- the scopes, reloaded before the agent renders again): "".
function _M.serve(scope)
    local name = ssl.server_name()
    -- No host name holds a "/" (nginx picked the server without it: an invalid host), and
    -- "ADDRESS/NAME" looked up in the scope "" is another scope's key: not ours to serve.
    if name and name:find("/", 1, true) then
        return
    end
    local scoped = (scope or "") ~= ""
    local prefix = scoped and "h:" .. scope .. "/" or "h:"
    local key
    if name then
        -- As nginx's server names and the route table see it ($host): lower case, without
        -- the trailing dot of a fully qualified name.
        key = key_of(prefix, (name:lower():gsub("%.$", "")))
    end
    if key == nil and scoped then
        key = certificates:get(prefix)
    end
    local pem = key and certificates:get("c:" .. key)
    if pem == nil then
        return
    end
    local entry = cache[key]
    if entry == nil or entry.pem ~= pem then
        -- The control endpoint parsed this PEM before accepting it.
        entry = { pem = pem, cert = ssl.parse_pem_cert(pem), key = ssl.parse_pem_priv_key(pem) }
        if not entry.cert or not entry.key then
            ngx.log(ngx.ERR, "edgeagent: cannot parse certificate ", key)
            return
        end
        cache[key] = entry
    end
    local ok, err = ssl.clear_certs()
    if ok then
        ok, err = ssl.set_cert(entry.cert)
    end
    if ok then
        ok, err = ssl.set_priv_key(entry.key)
    end
    if not ok then
        ngx.log(ngx.ERR, "edgeagent: cannot serve certificate ", key, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

return _M
