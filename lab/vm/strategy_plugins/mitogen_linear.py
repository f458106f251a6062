"""Mitogen's linear strategy for the VM lab (lab/vm/, molecule/lvs): Ansible's own linear
strategy over one persistent Python per node, instead of a Python started for every task,
which under QEMU's software emulation costs seconds of CPU each (docs/lab.md, "VM lab").

Mitogen ships it under its package; this module lets ANSIBLE_STRATEGY_PLUGINS name a directory
of this repository instead of one inside the virtualenv, and turns off Mitogen's CPU pinning:
on two cores it pins every child of Ansible to the second one, and here those children include
the VMs themselves (QEMU, started by molecule/lvs/create.yml) and the load generator.
"""

import ansible_mitogen.affinity
from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

# The base policy places nothing: the kernel schedules Ansible, ssh and QEMU as it sees fit.
ansible_mitogen.affinity.policy = ansible_mitogen.affinity.Policy()

__all__ = ["StrategyModule"]
