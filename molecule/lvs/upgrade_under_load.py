"""side_effect.yml: playbooks/rolling-upgrade.yml on one real server of each topology at once,
each under load through its own VIP; fails when a request was lost. Figures:
reports/vm-lab/rolling-upgrade-<topology>.json.

    python molecule/lvs/upgrade_under_load.py OUT_DIR TOPOLOGY=NODE [TOPOLOGY=NODE...]
"""

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import vmlab


def upgrade_under_load(topology_name: str, node: str, out_dir: Path) -> dict:
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
    return figures


def main() -> None:
    out_dir = Path(sys.argv[1])
    upgrades = dict(argument.split("=", 1) for argument in sys.argv[2:])
    # The topologies share no node: their upgrades run side by side.
    with ThreadPoolExecutor(len(upgrades)) as pool:
        futures = {
            name: pool.submit(upgrade_under_load, name, node, out_dir)
            for name, node in upgrades.items()
        }
        results = {name: future.result() for name, future in futures.items()}
    print(results)
    lossy = {name: f for name, f in results.items() if f["failed"] or f["broken"]}
    if lossy:
        sys.exit(f"the rolling upgrade lost requests: {lossy}")


if __name__ == "__main__":
    main()
