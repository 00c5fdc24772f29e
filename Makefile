# handcni.podnet: two commands set up a fresh Debian 12 machine (as root) and run everything.
#   make lab    install what is missing, bring the lab up, converge site.yml, verify by traffic
#   make lab-ssh  the same with the workers as Debian 12 machines reached over SSH
#   make test   install what is missing, then run every test tier (within 20 minutes on 2 CPUs)
#   make test-all   the same tiers with every case and every molecule scenario (the full matrix)
SHELL := /bin/bash
.DEFAULT_GOAL := lab

VENV := .venv
BIN := $(VENV)/bin
ARGS ?=
# The lab's inventory (make lab INVENTORY=inventories/example): bin/lab builds it, the playbooks run on it.
INVENTORY ?= inventories/lab
# Debian packages the lab and the tests use: the kernel tools, the real daemons and CNI plugins.
DEBS := iproute2 iptables nftables bird2 frr frr-pythontools containernetworking-plugins user-mode-linux kmod \
        conntrack tcpdump graphviz iperf3 iputils-ping curl procps util-linux python3-venv git \
        mmdebstrap systemd-container netcat-openbsd openssh-client dpkg-dev
COLLECTION := .collections/ansible_collections/handcni/podnet
SANITY_ROOT := /tmp/handcni-podnet-sanity
GET_PIP_VERSION := 24_2
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: lab lab-ssh lab-down test test-all integration-all molecule-all static deps setup unit integration test-uml molecule sanity lint build ee picture clean bench bench-converge bench-pods bench-services bench-dataplane bench-bfd bench-restore

## Set-up ---------------------------------------------------------------------
deps:
	@missing=$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  bin/apt-install $$missing; \
	fi

$(BIN)/.installed: requirements.txt | deps
	test -x $(BIN)/python || /usr/bin/python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(COLLECTION):
	mkdir -p $(dir $(COLLECTION))
	ln -sfn ../../.. $(COLLECTION)

setup: deps $(BIN)/.installed $(COLLECTION)

## The lab --------------------------------------------------------------------
lab: export HANDCNI_INVENTORY = $(INVENTORY)
lab: setup
	bin/lab up
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/site.yml $(ARGS)
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/verify.yml $(ARGS)
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/topology.yml $(ARGS) | grep -o 'Topology picture: [^"]*'

# The workers as Debian 12 machines (systemd-nspawn in the lab's namespaces), converged over SSH.
lab-ssh: setup
	bin/lab up -i inventories/machines
	bin/machines up -i inventories/machines
	$(BIN)/ansible-playbook -i inventories/machines playbooks/site.yml $(ARGS)
	$(BIN)/ansible-playbook -i inventories/machines playbooks/verify.yml $(ARGS)

lab-down:
	bin/machines down
	bin/lab down

## Tests ----------------------------------------------------------------------
# `make test` exercises every capability at least once, by traffic, within 20 minutes on 2 CPUs:
# integration without the cases marked `full`, and the molecule scenarios of MOLECULE_FAST.
# `make test-all` runs every case and every scenario (the full matrix; run it before resolving an issue).
MOLECULE_FAST := default other_inventory machines

test: setup unit integration
	# user-mode Linux keeps about one CPU busy: the static checks run beside it.
	$(MAKE) --no-print-directory -j2 --output-sync=target test-uml static
	$(MAKE) --no-print-directory molecule

test-all: setup unit integration-all
	$(MAKE) --no-print-directory -j2 --output-sync=target test-uml static
	$(MAKE) --no-print-directory molecule-all

static: sanity lint ee

unit:
	$(BIN)/pytest -q tests/unit

# IPIP for real (seed lab 6) in user-mode Linux, whose kernel has the ipip module: tests/uml/run.
test-uml: setup
	tests/uml/run

integration:
	# One lab per test file, several files at once.
	$(BIN)/pytest -q -n 3 --dist loadfile -m 'not full' tests/integration

integration-all:
	$(BIN)/pytest -q -n 3 --dist loadfile tests/integration

molecule:
	tests/molecule-all $(MOLECULE_FAST)

molecule-all:
	tests/molecule-all

build: setup
	mkdir -p build
	$(BIN)/ansible-galaxy collection build --force --output-path build .

sanity: build
	# ansible-test wants the collection at ansible_collections/handcni/podnet, outside any git tree.
	rm -rf $(SANITY_ROOT)
	$(BIN)/ansible-galaxy collection install --force -p $(SANITY_ROOT) build/handcni-podnet-*.tar.gz
	cp -r tests $(SANITY_ROOT)/ansible_collections/handcni/podnet/
	install -D -m 0644 tests/sanity/get_pip.py $(HOME)/.ansible/test/cache/get_pip_$(GET_PIP_VERSION).py
	cd $(SANITY_ROOT)/ansible_collections/handcni/podnet && \
	  PATH=$(CURDIR)/$(BIN):$$PATH ansible-test sanity --venv --python 3.11 --color no
	ANSIBLE_COLLECTIONS_PATH=$(SANITY_ROOT) $(BIN)/ansible-doc handcni.podnet.veth > /dev/null
	rm -rf $(SANITY_ROOT)

lint:
	$(BIN)/ansible-lint --profile production

## Benchmarks (not tests) ----------------------------------------------------------
# Every figure and ratio of docs/benchmarks.md, each floor checked (about 20 minutes; nothing else running).
bench: setup
	# Each benchmark runs even when one before it misses a floor; make fails if any did.
	rc=0; for b in converge.py "converge.py --machines" pods.py services.py dataplane.py bfd.py restore.py; do \
	  $(BIN)/python bench/$$b || rc=1; done; exit $$rc

bench-converge: setup
	# An unchanged converge of the seed lab against one ping per host (floor: at most 6 times); then on the machines
	# lab over SSH, the controller's CPU per task and host against ping's (floor: at most ping's)
	rc=0; $(BIN)/python bench/converge.py || rc=1; $(BIN)/python bench/converge.py --machines || rc=1; exit $$rc

bench-pods: setup
	# Per-pod cost against the CNI bridge plugin, re-run cost, node count; plot docs/bench-per-pod.png
	$(BIN)/python bench/pods.py

bench-services: setup
	# 1,000 services x 2 endpoints on a throwaway lab node, both backends; then 10,000 (one round)
	$(BIN)/python bench/services.py

bench-dataplane: setup
	# iperf3 pod to pod across nodes (static, VXLAN, IPIP in user-mode Linux) against node to node
	$(BIN)/python bench/dataplane.py

bench-bfd: setup
	# How long the leaf routes to a node whose cable is cut, and a service it announced fails: hold time against BFD
	$(BIN)/python bench/bfd.py

bench-restore: setup
	# The outage after each fault of a node's own managers until the node-side restore put it back; its cost
	$(BIN)/python bench/restore.py

ee: build
	# The AWX execution environment's build context (building the image needs podman or docker).
	$(BIN)/ansible-builder create -f execution-environment.yml --context build/ee

picture: setup
	$(BIN)/ansible-playbook playbooks/topology.yml $(ARGS)
	cp build/topology.svg build/topology.png docs/

clean:
	rm -rf build .collections
