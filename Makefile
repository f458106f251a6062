# The HA edge toolkit. Two commands on a fresh Debian 12 machine as root:
#   make lab    build the local lab, run site.yml, curl through the VIP
#   make test   lint, pytest suites, the built collection installed and run, molecule
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup host-packages docker lab lab-down vm-lab vm-lab-down drill verify test lint pytest collection collection-test molecule molecule-lvs bench clean

## setup: host packages, dockerd, and .venv/ with the agent and every tool (idempotent)
setup: host-packages $(VENV)/.installed

host-packages:
	@lab/host-packages.sh

$(VENV)/.installed: requirements.txt edgeagent/pyproject.toml kubeemu/pyproject.toml
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt -e ./edgeagent -e ./kubeemu
	touch $@

docker: setup
	@lab/dockerd.sh

## lab: the Docker lab on 198.51.100.0/24, site.yml, curl through the VIP 198.51.100.100, verify
##   TOPOLOGY=seed: the 2017 setup on the VM lab instead: two director VMs, VIP 198.19.0.102,
##   in front of cluster node containers running an in-cluster controller (docs/seed-topology.md)
##   VIP_MODE=bgp: the edges announce the VIP by BGP to a router container, ECMP to both, the
##   requests from a client behind it (docs/bgp.md, "The lab"); verify is VRRP's and is left out.
##   A built lab keeps its mode (.lab/vip-mode) until make lab-down.
VIP_MODE ?= $(or $(shell cat .lab/vip-mode 2>/dev/null),vrrp)
LAB_MODE_VARS := $(if $(filter bgp,$(VIP_MODE)),-e @lab/bgp-mode.yml)
lab: docker
ifeq ($(TOPOLOGY),seed)
	lab/vm/up.sh seed
else
	lab/up.sh $(VIP_MODE)
	$(if $(filter bgp,$(VIP_MODE)),,$(MAKE) verify INVENTORY=inventory/lab)
endif

lab-down:
	lab/down.sh
ifeq ($(TOPOLOGY),seed)
	lab/vm/down.sh
endif

## vm-lab: QEMU VMs with real LVS on 198.19.0.0/24, site.yml, curl through the VIP
##   (TOPOLOGY="a" separate tiers, default; "b" co-located; "a b" both; docs/lab.md)
TOPOLOGY ?= a
vm-lab: setup
	lab/vm/up.sh $(TOPOLOGY)

vm-lab-down:
	lab/vm/down.sh

## verify: the deployed edge checked on every node and through its VIPs (docs/verify.md);
##   INVENTORY=inventory/<site> on real hosts (through paramiko); reports/verify-<time>.json
INVENTORY ?= inventory/lab
verify: setup
	ansible-playbook -i $(INVENTORY) edgeops.edge.verify

## drill: the failover drill on the lab (make lab first), in the lab's VIP mode
drill: setup
	ansible-playbook -i inventory/lab $(LAB_MODE_VARS) edgeops.edge.failover_drill

## test: everything CI runs
test: lint pytest collection-test molecule

lint: setup
	yamllint -s .
	ansible-lint --profile production
	ruff check edgeagent kubeemu bench lab drill roles playbooks plugins tools molecule tests
	ruff format --check edgeagent kubeemu bench lab drill roles playbooks plugins tools molecule tests
	# roles/*/README.md are generated from meta/argument_specs.yml: fail when one is stale
	python tools/role_readme.py --check
	# the shipped Prometheus alert rules (promtool: Debian's prometheus package)
	cd roles/edgeagent/files/prometheus && promtool check rules edgeagent-alerts.yml \
	  && promtool test rules edgeagent-alerts.test.yml
	# molecule/vagrant (no Vagrant here; the default driver stands in for it): syntax only
	EDGE_VAGRANT_DRIVER=default molecule syntax -s vagrant

pytest: setup
	pytest -q edgeagent/tests kubeemu/tests drill/tests playbooks/tests lab/tests bench/tests

## collection: the collection tarball build/edgeops-edge-<version>.tar.gz, installed offline
##   into build/collections/ (emptied first), as a user without Galaxy access installs it
COLLECTION_PATH := $(CURDIR)/build/collections
collection: setup
	rm -rf $(COLLECTION_PATH) build/edgeops-edge-*.tar.gz
	ansible-galaxy collection build --output-path build/
	# Only the install directory on the path: the checkout (.collections/) would satisfy it.
	ANSIBLE_COLLECTIONS_PATH=$(COLLECTION_PATH) \
	  ansible-galaxy collection install --offline -p $(COLLECTION_PATH) build/edgeops-edge-*.tar.gz

## collection-test: plays of the installed collection, run from outside the checkout without
##   its ansible.cfg: every playbook's syntax, validate on the lab inventory, the agent's build
COLLECTION_PLAYBOOKS := site edge validate verify failover_drill drain undrain rolling_upgrade uninstall cluster_nodes
collection-test: collection
	cd build && for playbook in $(COLLECTION_PLAYBOOKS); do \
	  env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH=$(COLLECTION_PATH) \
	    ansible-playbook -i $(CURDIR)/inventory/lab --syntax-check edgeops.edge.$$playbook; \
	done
	cd build && env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH=$(COLLECTION_PATH) \
	  ansible-playbook -i $(CURDIR)/inventory/lab \
	    -e '{"edgeagent_kubeconfig": "collection-test", "edgeagent_apply_rbac": false}' \
	    $(CURDIR)/tools/collection-test.yml

## molecule: the Docker scenario (converged from the installed tarball, build/collections), then
##   real LVS on six QEMU VMs (both topologies, docs/lab.md)
molecule: docker collection
	lab/molecule-cleanup.sh
	lab/image.sh
	lab/image.sh trixie
	EDGE_COLLECTIONS_DIR=build/collections molecule test -s default
	$(MAKE) molecule-lvs

## molecule-lvs: the lvs scenario alone (about 15 min)
molecule-lvs: setup
	lab/vm/down.sh
	molecule test -s lvs

## bench: benchmarks; writes bench/results/latest.json and docs/benchmarks.md
bench: setup
	python bench/run.py

clean: lab-down
	rm -rf $(VENV) .lab
