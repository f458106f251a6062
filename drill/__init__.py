"""Failover drill: load generator, VIP holder watch, analysis and report.

The pieces run on the Ansible controller while playbooks/failover_drill.yml injects faults:
`loadgen` writes every request to a JSONL timeline, `ip monitor` logs (parsed by `holders`)
say which node held the VIP when, and `report` turns both plus the playbook's fault marks
into reports/drill-<time>.json, a PNG timeline and a printed table. Everything but the two
I/O entry points (`loadgen`, `report`) is pure and unit-tested in drill/tests.
"""
