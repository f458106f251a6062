"""Filters for playbooks/edge.yml and the lvs_pool role's leave and rejoin (a node with
changes pending leaves the traffic path while site.yml changes it).

- `inventory_hostname | edgeops.edge.edge_site_digest(hostvars, groups['edge'])`: a digest
  of what site.yml applies to a node: this collection's roles, playbooks, plugins and agent,
  the node's role settings and groups, and what its configuration reads of every edge node
  (addresses, tiers, groups). A node that last applied the same digest has nothing pending.
- `journal_lines | edgeops.edge.edge_vrrp_states`: the last state of each VRRP instance,
  from the transitions that keepalived's notify script writes to the journal.
"""

import hashlib
import json
from pathlib import Path

COLLECTION = Path(__file__).resolve().parents[2]
# What site.yml puts on a node: the roles (templates, files, tasks), the playbooks, these
# plugins, the agent's source; not tests, docs or the collection's own metadata.
CONTENT = ("roles", "playbooks", "plugins", "edgeagent/src", "edgeagent/pyproject.toml")
SKIPPED_PARTS = {"tests", "__pycache__"}
# The roles' variables; `edge_serial` and the like only steer a run.
SETTING_PREFIXES = ("lvs_", "keepalived_", "nginx_", "edgeagent_", "frr_")
# What the roles read of the other edge nodes (their inventory, not their facts: a run limited
# to some nodes has no facts of the others).
PEER_SETTINGS = ("keepalived_node_address", "lvs_director", "lvs_real_server", "group_names")


def _content_digest() -> str:
    digest = hashlib.sha256()
    for top in CONTENT:
        root = COLLECTION / top
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            relative = path.relative_to(COLLECTION)
            if SKIPPED_PARTS & set(relative.parts) or path.suffix in (".md", ".pyc"):
                continue
            if any(part.endswith(".egg-info") for part in relative.parts):  # pip's, local
                continue
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _resolved(variables, name):
    try:
        return json.dumps(variables[name], sort_keys=True, default=str)
    except Exception as error:  # an unresolvable value: its name and the reason count
        return f"unresolved: {type(error).__name__}"


def edge_site_digest(host, hostvars, hosts) -> str:
    own = hostvars[host]
    names = sorted(key for key in own if key.startswith(SETTING_PREFIXES) or key == "group_names")
    peers = {}
    for peer in sorted(hosts):
        variables = hostvars[peer]
        peers[str(peer)] = {
            name: _resolved(variables, name) for name in PEER_SETTINGS if name in variables
        }
    settings = {"node": {name: _resolved(own, name) for name in names}, "peers": peers}
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha256((_content_digest() + "\n" + text).encode()).hexdigest()


def edge_vrrp_states(lines) -> dict:
    """{instance: state} of the newest INSTANCE transition of each VRRP instance."""
    states = {}
    for line in lines:
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event.get("type") == "INSTANCE":
            states[event["name"]] = event["state"]
    return states


class FilterModule:
    def filters(self):
        return {"edge_site_digest": edge_site_digest, "edge_vrrp_states": edge_vrrp_states}
