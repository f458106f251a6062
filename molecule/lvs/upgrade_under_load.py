"""side_effect.yml: playbooks/rolling-upgrade.yml on one real server of each topology, under
load through its VIP; fails when a request was lost. Figures: reports/vm-lab/rolling-upgrade-*.

    python molecule/lvs/upgrade_under_load.py TOPOLOGY NODE OUT_DIR
"""

import sys
import time
from pathlib import Path

import vmlab


def main() -> None:
    topology_name, node, out_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    topology = vmlab.topologies()[topology_name]
    load = vmlab.Load(topology.vip, out_dir / f"rolling-upgrade-{topology_name}.jsonl")
    try:
        time.sleep(2)
        seconds = vmlab.playbook("rolling-upgrade.yml", node)
        time.sleep(3)
    finally:
        records = load.stop()
    figures = vmlab.summary(records) | {"node": node, "playbook_s": round(seconds, 1)}
    vmlab.record_figures(f"rolling-upgrade-{topology_name}", figures)
    print(figures)
    if figures["failed"] or figures["broken"]:
        sys.exit(f"{topology_name}: the rolling upgrade of {node} lost requests: {figures}")


if __name__ == "__main__":
    main()
