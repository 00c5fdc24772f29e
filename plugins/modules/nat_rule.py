#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: nat_rule
short_description: Manage a namespace's pod NAT (egress masquerade, service DNAT) as owned firewall sets
version_added: 0.1.0
description:
  - Masquerades pod egress in O(netns), like seed lab 3's
    C(iptables -t nat -I POSTROUTING -s 192.168.10.0/24 ! -o br0 -j MASQUERADE), with the cluster and
    other no-masquerade networks left alone as kindnet's C(--no-masquerade-cidr) does.
  - Translates services as kube-proxy does, like seed labs 4 and 5's
    C(iptables -t nat -I PREROUTING -d 11.96.10.3 -p tcp --dport 8080 -j DNAT --to-destination 192.168.10.3:80)
    (and the same in C(OUTPUT), so the node reaches them too). A service's cluster IP and port, and its node
    port on the node's own addresses, go to one of its endpoints chosen at random for each new connection.
    Node-port traffic is masqueraded, so replies come back through the node that translated it, and so is a
    pod reaching itself through its own service (hairpin), both through a packet mark (C(0x2000)) that
    postrouting masquerades. Endpoints may be anywhere the node can route to, such as pods on other nodes.
  - "With O(backend=iptables) everything lives in chains of table C(nat) named C(HANDCNI-*):
    C(HANDCNI-POSTROUTING) (masquerade), and kube-proxy's layout for services: C(HANDCNI-SERVICES) (entered from
    C(PREROUTING) and C(OUTPUT)), C(HANDCNI-NODEPORTS), one C(HANDCNI-SVC-*) per service choosing an endpoint with
    C(-m statistic --mode random --probability), one C(HANDCNI-EXT-*) per node port, one C(HANDCNI-SEP-*) per
    endpoint, and C(HANDCNI-SERVICES-MASQ) (entered from C(POSTROUTING)). Built-in chains are entered by one rule
    each with the comment C(handcni.podnet), inserted first when missing. Every rule carries a comment starting
    with C(handcni.podnet). One C(iptables-restore --noflush) writes the chains of ours that differ and deletes
    those no longer wanted; no other rule is named, so rules made by anyone else stay as they are. IPv6 masquerade
    entries go to the same chain, with the same comments, in ip6tables' table C(nat), which one
    C(ip6tables-restore --noflush) of its own writes."
  - With O(backend=nftables) everything IPv4 lives in the table C(ip handcni). Chain C(postrouting) (masquerade), and
    for services the verdict maps C(service-ips) (cluster IP . protocol . port) and C(service-nodeports), chains
    C(service-NAME) choosing an endpoint with C(numgen random mod N-k 0 goto) rules, C(external-NAME), C(local-NAME),
    C(endpoint-NAME-IP-PORT)
    and the base chains C(prerouting), C(output) and C(services-masquerade). IPv6 masquerade entries live in the
    table C(ip6 handcni) (chain C(postrouting)), deleted when none is left. One C(nft -f -) transaction makes the
    tables, or changes only the chains, maps and map elements that differ. No other table is touched.
  - The module reads what is ours (C(iptables-save -t nat), C(nft -j list table ip handcni), and for IPv6
    C(ip6tables-save -t nat) and C(nft -j list table ip6 handcni) where the kernel has such a table, which it
    asks without a process, so a node without IPv6 NAT runs no more commands than before), renders the wanted
    rules in the same canonical form and compares them, so a second run reports no change, a rule of ours
    changed or deleted by hand is put back, and a change to one service touches only that service's rules.
  - Reading is skipped while the kernel's nf_tables generation (which every C(nft) and iptables-nft transaction
    of the namespace, anyone's, moves on) is the one the last run recorded in C(/var/lib/handcni) together with
    what each backend held. A run with the same arguments then changes nothing at once, and a changed run plans
    from that record. Any other change to the ruleset, a reboot, or iptables-legacy (or an ip6tables-legacy table
    C(nat)) means a full read, as before.
  - Each run manages the kinds it is given, O(masquerade) and/or O(services); what is ours of the other kind
    stays as it is. With neither given, both are managed (so O(state=absent) alone removes everything of ours).
    One run given both applies them in one transaction per backend (with iptables, one per family).
  - Ours found in the other backend (after switching O(backend)) is removed in the same run; with O(prune=false),
    entries found there that are not listed move over to O(backend).
  - A masquerade entry is identified by its O(masquerade[].source), a service by its O(services[].name). Entries
    of ours that are not listed are kept unless O(prune=true).
  - When a UDP service loses an endpoint (or changes its address), the conntrack entries of flows to that endpoint
    are deleted (C(conntrack -D)), so its clients move to the endpoints that remain instead of talking to the old
    one for as long as they keep sending. Flows to a UDP service address from before it had endpoints are
    deleted too (they were never translated). TCP connections finish where they are, as with kube-proxy.
  - The firewall tools run inside O(netns) through C(nsenter --net=/run/netns/NAME), with argument lists and their
    input on stdin; no shell is involved.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.common
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
options:
  backend:
    description:
      - The firewall to write to. V(iptables) needs C(iptables-save) and C(iptables-restore) (either the
        nf_tables or the legacy variant), V(nftables) needs C(nft).
      - With O(state=absent), ours is removed from every backend whose tools are installed.
    type: str
    choices: [iptables, nftables]
    default: iptables
  masquerade:
    description:
      - Traffic from O(masquerade[].source) to a destination outside every O(masquerade[].exclude) network,
        and not leaving through O(masquerade[].out_interface_not), is masqueraded (SNAT to the address of
        the interface it leaves by).
      - An entry is IPv4 or IPv6, its source and excludes of one family; a dual-stack node lists one of each.
      - Sources must not overlap, so each packet belongs to one entry.
      - With O(state=absent), only the sources matter; an empty list removes every entry of ours.
      - Not given, the masquerade entries of ours are left as they are (unless O(services) is not given either).
    type: list
    elements: dict
    suboptions:
      source:
        description:
          - Source network in CIDR form, usually the node's pod CIDR, or its IPv6 pod prefix (such as V(fd00:10::/64)).
          - V(0.0.0.0/0) means any IPv4 source, V(::/0) any IPv6 one.
        type: str
        required: true
      exclude:
        description:
          - Destination networks never masqueraded, such as the cluster CIDR and the no-masquerade CIDRs, of
            O(masquerade[].source)'s family.
          - Normalised as the kernel keeps them, sorted and with overlapping and adjacent networks merged.
        type: list
        elements: str
        default: []
      out_interface_not:
        description:
          - Leave traffic alone that goes out through this interface, such as the pod bridge C(br0).
          - Letters, digits, V(_), V(.) and V(-) only.
        type: str
  services:
    description:
      - Services to translate, kube-proxy style, on this node. Every node of a cluster gets the same list.
      - With O(state=absent), only the names matter; an empty list removes every service of ours.
      - Not given, the services of ours are left as they are (unless O(masquerade) is not given either).
      - Names, cluster IP and port (per protocol), and node ports (per protocol) must be unique within a family.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - The service's name, which marks its rules (comment C(handcni.podnet service NAME)) and names its
            nftables chains. Letters, digits, V(_), V(.) and V(-), at most 63.
        type: str
        required: true
      cluster_ip:
        description:
          - The service's virtual address, such as seed lab 4's V(11.96.10.3), IPv4 or IPv6. Required with O(state=present).
          - An entry is of one family, its endpoints and external addresses of the same. A dual-stack Service is two
            entries of the same name, one per family (as the services role expands it); its node port is the same.
        type: str
      port:
        description: The service's port on O(services[].cluster_ip). Required with O(state=present).
        type: int
      protocol:
        description: The service's transport protocol.
        type: str
        choices: [tcp, udp]
        default: tcp
      node_port:
        description:
          - Also reachable on this port of every O(node_addresses) address, from outside and from the node itself
            (seed lab 5's V(32080)). The traffic is masqueraded, as kube-proxy does for C(externalTrafficPolicy=Cluster).
        type: int
      target_port:
        description: The endpoints' port, where they do not give their own. Defaults to O(services[].port).
        type: int
      external_ips:
        description:
          - More addresses the service answers on O(services[].port), as a Kubernetes Service's C(externalIPs),
            such as addresses the bgp role announces to the leaf (C(bgp_advertise_services)). Traffic to them is
            translated where it enters the node (C(PREROUTING)), so the node needs no such address.
          - An address belongs to one service only, and is not its cluster IP.
        type: list
        elements: str
        default: []
      load_balancer_ip:
        description: One more external address, as a C(LoadBalancer) Service's C(loadBalancerIP); treated as O(services[].external_ips).
        type: str
      external_traffic_policy:
        description:
          - How node-port and external-address traffic is sent, as a Kubernetes Service's C(externalTrafficPolicy).
          - V(Cluster) sends it to any endpoint and masquerades it (the endpoint sees this node's address).
          - V(Local) sends it only to this node's endpoints (O(services[].endpoints[].local)) and keeps the
            client's address; a node without one does not answer the node port or the external addresses (so
            only the nodes holding an endpoint should announce them). The cluster IP reaches every endpoint either way.
        type: str
        choices: [Cluster, Local]
        default: Cluster
      endpoints:
        description:
          - Where the traffic goes, one endpoint chosen at random for each new connection (or UDP flow).
          - A service without endpoints keeps its cluster IP and node port unanswered by the NAT; its traffic
            is routed as any other.
        type: list
        elements: dict
        default: []
        suboptions:
          ip:
            description: The endpoint's address, usually a pod's, of O(services[].cluster_ip)'s family.
            type: str
            required: true
          port:
            description: The endpoint's port. Defaults to O(services[].target_port).
            type: int
          local:
            description: The endpoint runs on this node (used by O(services[].external_traffic_policy=Local)).
            type: bool
            default: false
  node_addresses:
    description:
      - The node's own addresses, where node ports are reachable (kube-proxy's C(--nodeport-addresses)), of either
        family; an IPv6 service's node port listens on the IPv6 ones. Needed when a service of that family has a node port.
      - Not given, the addresses of ours in place are kept. Given alone (without O(services)), they replace those
        addresses and the services of ours stay as they are.
    type: list
    elements: str
  cluster_cidrs:
    description:
      - The cluster's pod networks. Traffic to a cluster IP from any other source (the node itself, or a host outside
        the cluster when the service range is announced by BGP) is masqueraded, so that the reply comes back
        through this node whichever node the endpoint is on; kube-proxy does the same with C(--cluster-cidr).
      - Not given, those of ours in place are kept; empty, nothing is masqueraded for coming from outside.
    type: list
    elements: str
notes:
  - IPv6 services and masquerade entries go in ip6tables' table C(nat) or the nftables table C(ip6 handcni), with the
    same chains as IPv4's. With O(backend=iptables), IPv6 entries need C(ip6tables-save) and C(ip6tables-restore); a
    node without them is refused only for IPv6 entries. UDP flows of IPv6 services are flushed with C(conntrack -f ipv6).
  - The kernel must forward (C(net.ipv4.ip_forward=1), for IPv6 C(net.ipv6.conf.all.forwarding=1), see
    M(handcni.podnet.sysctl)) for pod egress and services to work. Pods on a bridge reach a service on the same bridge only with C(br_netfilter)
    (C(net.bridge.bridge-nf-call-iptables=1)), which kube-proxy needs as well, and a pod reaches itself through its
    service only with hairpin mode on its bridge port (M(handcni.podnet.veth) sets it).
  - Flushing UDP flows needs C(conntrack) (conntrack-tools); without it the module warns and the old flows stay
    until they time out.
  - Check mode runs only the reading commands.
  - With O(backend=iptables) the rules go to the variant the node's C(iptables) is (iptables-nft or
    iptables-legacy). A node where rules of others are in the other variant is refused before any change,
    naming the first of them, because the two variants do not see each other's rules (projectcalico/calico#2322).
    IPv6 entries go likewise to the variant the node's C(ip6tables) is, checked the same way.
seealso:
  - module: handcni.podnet.sysctl
  - module: handcni.podnet.route
  - name: kindnet masquerade agent
    description: The no-masquerade-CIDR design the masquerade part follows.
    link: https://github.com/kubernetes-sigs/kindnet
  - name: kube-proxy
    description: The iptables and nftables layouts the services part follows.
    link: https://kubernetes.io/docs/reference/networking/virtual-ips/
"""

EXAMPLES = r"""
- name: Pod egress through the node's address, not for pod-to-pod traffic (seed lab 3)
  handcni.podnet.nat_rule:
    masquerade:
      - source: 192.168.10.0/24
        exclude: [192.168.0.0/19]  # the cluster CIDR: every node's pod CIDR, not the node network
        out_interface_not: br0
    prune: true

- name: Dual-stack egress, one IPv4 and one IPv6 entry (the IPv6 one in ip6tables' table nat)
  handcni.podnet.nat_rule:
    masquerade:
      - source: 192.168.10.0/24
        exclude: [192.168.0.0/19]
        out_interface_not: br0
      - source: fd00:10::/64
        exclude: [fd00::/48]  # the IPv6 cluster prefix: every node's IPv6 pod prefix
        out_interface_not: br0
    prune: true

- name: Seed labs 4 and 5, with a second endpoint and a UDP service; every other service of ours is removed
  handcni.podnet.nat_rule:
    services:
      - name: web
        cluster_ip: 11.96.10.3
        port: 8080
        node_port: 32080
        target_port: 80
        endpoints:
          - ip: 192.168.10.3
          - ip: 192.168.20.2
      - name: echo
        cluster_ip: 11.96.10.7
        port: 7
        protocol: udp
        endpoints:
          - {ip: 192.168.30.3, port: 7007}
    node_addresses: [192.168.210.21]
    prune: true

- name: Egress and services in one transaction, with nftables; ours in iptables is removed in the same run
  handcni.podnet.nat_rule:
    backend: nftables
    masquerade:
      - source: "{{ podnet_pod_cidr }}"
        exclude: "{{ [podnet_cluster_cidr] + podnet_no_masquerade_cidrs }}"
    services: "{{ my_services }}"
    node_addresses: ["{{ podnet_node_ip }}"]
    prune: true

- name: A load-balancer address announced by BGP, answered only by this node's endpoints, client address kept
  handcni.podnet.nat_rule:
    services:
      - name: web-local
        cluster_ip: 11.96.10.5
        port: 80
        load_balancer_ip: 198.51.100.11
        external_traffic_policy: Local
        endpoints:
          - {ip: 192.168.10.3, local: true}
          - ip: 192.168.30.3
    node_addresses: [192.168.210.21]
    cluster_cidrs: [192.168.0.0/19]

- name: Remove one service; the others and the masquerade entries stay
  handcni.podnet.nat_rule:
    services:
      - name: echo
    state: absent

- name: Masquerade in a lab node's router namespace
  handcni.podnet.nat_rule:
    netns: router
    masquerade:
      - source: 10.0.0.0/24

- name: Remove every NAT rule of ours
  handcni.podnet.nat_rule:
    state: absent
"""

RETURN = r"""
actions:
  description: >-
    One line per firewall transaction run, or in check mode that would be run, then one per conntrack flush.
    With iptables, IPv6's transaction is C(ip6tables-restore)'s; with nftables, one C(nft -f) names each table.
  returned: always
  type: list
  elements: str
  sample: ["iptables-restore --noflush: table nat: add jump POSTROUTING -> HANDCNI-POSTROUTING,
            write chain HANDCNI-POSTROUTING (2 rules)",
           "ip6tables-restore --noflush: table nat: add jump POSTROUTING -> HANDCNI-POSTROUTING,
            write chain HANDCNI-POSTROUTING (2 rules)",
           "conntrack -D -p udp --orig-dst 11.96.10.7 --orig-port-dst 7 --reply-src 192.168.30.3 --reply-port-src 7007
            (UDP flows of service echo to removed endpoint 192.168.30.3:7007)"]
masquerade:
  description: The masquerade entries of ours after the run (in check mode, after a real run), normalised, IPv4 first.
  returned: always
  type: list
  elements: dict
  sample: [{source: 192.168.10.0/24, exclude: [192.168.0.0/19], out_interface_not: br0},
           {source: "fd00:10::/64", exclude: ["fd00::/48"], out_interface_not: br0}]
services:
  description:
    - The services of ours after the run (in check mode, after a real run), normalised, sorted by name.
    - Only in diff mode (the caller gave them; at 10,000 services returning them costs more than the rest of a
      run); see RV(service_count).
  returned: in diff mode
  type: list
  elements: dict
  sample:
    - name: web
      cluster_ip: 11.96.10.3
      port: 8080
      protocol: tcp
      node_port: 32080
      endpoints: [{ip: 192.168.10.3, port: 80}, {ip: 192.168.20.2, port: 80}]
      external_ips: [198.51.100.10]
      external_traffic_policy: Cluster
      local_endpoints: []
sync:
  description:
    - How the run planned, as kube-proxy's full and partial syncs.
    - V(none), the same run as the last one, on the rules it left (not one rule of the namespace changed since);
      nothing read or written.
    - V(partial), only some services' endpoints changed since that run; those services alone planned and written.
    - V(record), planned from what that run left, no rule read.
    - V(read), the rules read with the backends' tools (the first run, diff mode, or a rule changed by anyone
      else since the last run).
  returned: always
  type: str
  sample: partial
service_count:
  description: How many services of ours there are after the run.
  returned: always
  type: int
  sample: 2
node_addresses:
  description: Where the node ports of ours listen after the run (empty without services).
  returned: always
  type: list
  elements: str
  sample: [192.168.210.21]
cluster_cidrs:
  description: The cluster's pod networks of ours after the run (empty without services); see O(cluster_cidrs).
  returned: always
  type: list
  elements: str
  sample: [192.168.10.0/24, 192.168.20.0/24, 192.168.30.0/24]
transactions:
  description: The exact command and input of each transaction in RV(actions), without the C(nsenter) prefix.
  returned: always
  type: list
  elements: dict
  contains:
    backend:
      description: V(iptables) or V(nftables).
      type: str
    argv:
      description: The command.
      type: list
      elements: str
    input:
      description: What the command reads on stdin.
      type: str
  sample:
    - backend: nftables
      argv: [nft, -f, "-"]
      input: "add table ip handcni\ndelete table ip handcni\nadd table ip handcni\n..."
diff:
  description: >-
    Our rules per backend before and after, as canonical lines: C(iptables-save) style for iptables (IPv6's
    follow, each after C(ip6tables: )), C(nft add ...) statements for nftables (IPv6's name C(table ip6 handcni)).
  returned: when diff mode is on
  type: dict
  sample:
    before: {iptables: [], nftables: []}
    after:
      iptables:
        - ":HANDCNI-POSTROUTING - [0:0]"
        - -A POSTROUTING -m comment --comment handcni.podnet -j HANDCNI-POSTROUTING
        - -A HANDCNI-POSTROUTING -s 192.168.10.0/24 -d 192.168.0.0/19 -m comment --comment
          "handcni.podnet masquerade 192.168.10.0/24" -j RETURN
        - -A HANDCNI-POSTROUTING -s 192.168.10.0/24 ! -o br0 -m comment --comment
          "handcni.podnet masquerade 192.168.10.0/24" -j MASQUERADE
        - "ip6tables: :HANDCNI-POSTROUTING - [0:0]"
        - "ip6tables: -A POSTROUTING -m comment --comment handcni.podnet -j HANDCNI-POSTROUTING"
        - "ip6tables: -A HANDCNI-POSTROUTING -s fd00:10::/64 -d fd00::/48 -m comment --comment
          \"handcni.podnet masquerade fd00:10::/64\" -j RETURN"
        - "ip6tables: -A HANDCNI-POSTROUTING -s fd00:10::/64 ! -o br0 -m comment --comment
          \"handcni.podnet masquerade fd00:10::/64\" -j MASQUERADE"
      nftables: []
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _command as command
from ansible_collections.handcni.podnet.plugins.module_utils import _firewall as firewall
from ansible_collections.handcni.podnet.plugins.module_utils import _services as services
from ansible_collections.handcni.podnet.plugins.module_utils import _nat_record as nat_record
from ansible_collections.handcni.podnet.plugins.module_utils._iptables import IptablesNat
from ansible_collections.handcni.podnet.plugins.module_utils._nftables import NftablesNat
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._netlink import ruleset_mark
from ansible_collections.handcni.podnet.plugins.module_utils._state import STATE_DIR, locked

LOCK = f"{STATE_DIR}/nat_rule"  # .lock: beside the other records of ours, which teardown removes
BACKENDS = {"iptables": IptablesNat, "nftables": NftablesNat}


def targets_for(params: dict, kinds: tuple, names: list, have: dict) -> dict:
    """The set each backend should hold of the managed kinds after this run (ValueError on bad input)."""
    state, chosen, prune = params["state"], params["backend"], params["prune"]
    listed = firewall.normalise_masquerades(params["masquerade"], "masquerade")
    wanted_services = services.normalise_services(params["services"], "services", state, unique=False)
    addresses, cidrs = params["node_addresses"], params["cluster_cidrs"]
    if addresses is not None:
        addresses = services.normalise_addresses(addresses, "node_addresses")
    if cidrs is not None:
        cidrs = firewall.normalise_cidrs(cidrs, "cluster_cidrs")
    if state == "absent":
        return {name: firewall.NatSet(
            firewall.wanted(listed, have[name].masquerade, "absent", False).masquerade,
            services.wanted(wanted_services, list(have[name].nat.services), "absent", False),
            have[name].nat.node_addresses, have[name].nat.cluster_cidrs) for name in names}
    found = firewall.merged(have[name].nat for name in names)
    target = firewall.NatSet(
        firewall.wanted(listed, list(found.masquerade), "present", prune).masquerade if "masquerade" in kinds else (),
        services.wanted(wanted_services, list(found.services), "present", prune) if "services" in kinds else (),
        addresses if addresses is not None else found.node_addresses,
        cidrs if cidrs is not None else found.cluster_cidrs)
    services.check_node_addresses(target.services, target.node_addresses)
    return {name: target if name == chosen else firewall.NatSet() for name in names}


def main():
    module = PodnetModule(
        argument_spec=dict(
            backend=dict(type="str", default="iptables", choices=list(BACKENDS)),
            masquerade=dict(type="list", elements="dict", options=dict(firewall.MASQUERADE_SPEC)),
            services=dict(type="list", elements="dict"),
            node_addresses=dict(type="list", elements="str"),
            cluster_cidrs=dict(type="list", elements="str"),
        ),
        bulk=("services",),  # checked by normalise_services: Ansible's check of 10,000 services costs more than a run
    )
    params = module.params
    chosen, state = params["backend"], params["state"]
    kinds = firewall.managed_kinds(params)
    # One run at a time per node: read, plan and write must not interleave with another run's.
    with module.errors(), locked(LOCK, create=state == "present" and not module.check_mode):
        runner = command.Runner.of(module, params["netns"])
        backends, names = firewall.backends_in_order(BACKENDS, runner, chosen, state == "present")
        record = nat_record.applied_path(params["netns"], kinds)
        mark = ruleset_mark(params["netns"]) if all(backends[name].counted() for name in names) else None
        args, rest, given = nat_record.run_digests(params)
        entry = {"digest": args, "rest": rest, "given": given}
        last = None if module._diff else nat_record.last_run(record, mark)
        if last is not None and state == "present" and last["digest"] == args:
            module.canary = last["canary"]  # the same run again, on the same rules: nothing to do
            module.finish(transactions=[], sync="none", **last["result"])
        if last is not None and set(last["held"]) == set(names):
            changes = nat_record.endpoint_changes(last, params, rest, given, chosen) if state == "present" else None
            if changes is not None:
                partial_sync(module, backends[chosen], runner, last, changes, kinds, record, mark, entry)  # finishes
            have = {name: backends[name].render(firewall.natset_from_json(last["held"][name])) for name in names}
            sync = "record"
        else:
            have = {name: backends[name].read() for name in names}
            sync = "read"
        targets = targets_for(params, kinds, names, have)
        plans = {name: backends[name].plans(have[name], targets[name], kinds) for name in names}
        want = {name: plans[name][0] for name in names}
        transactions = [tx for name in names for tx in plans[name][1]]
        refused = backends[chosen].refused(plans[chosen][1]) if state == "present" else None
        if refused:
            raise ValueError(refused)
        before = firewall.merged(have[name].nat for name in names)
        held = {name: firewall.carried(targets[name], have[name].nat, kinds) for name in names}
        after = firewall.merged(held[name] for name in names)
        if module._diff:  # the lines of a large set cost time: made only for a diff
            module.before = {name: have[name].lines for name in names}
            module.after = {name: (want[name] if plans[name][1] else have[name]).lines for name in names}
        apply(module, backends, runner, transactions, before.services, after.services,
              after.node_addresses or before.node_addresses)
        if params["restore"] and params["netns"] is None:
            # of what this run manages only, so that the record does not follow the other kinds' runs
            probe = backends[chosen].probe(backends[chosen].drawing(targets[chosen]))
            module.canary["commands"] = [probe] if probe else []
        if not module.check_mode:
            exact = all(backends[name].drawing(held[name]).same(want[name].detail) for name in names)
            # list(): an empty NatSet is false, and json writes a false list as [] whatever it holds
            nat_record.keep_record(record, mark, len(transactions), state, params["netns"], dict(
                entry, held={name: list(nat) for name, nat in held.items()} if exact else None,
                result=after.public(with_services=False), canary=module.canary))
    # the services themselves only in diff mode: the caller gave them, and 10,000 cost more than the rest of a run
    module.finish(transactions=[tx.public() for tx in transactions], sync=sync,
                  **after.public(with_services=module._diff))


def partial_sync(module: PodnetModule, backend, runner: command.Runner, last: dict, changes: tuple, kinds: tuple,
                 record: str, mark: list, entry: dict) -> None:
    """Only some services' endpoints changed since the recorded run (nat_record.endpoint_changes): plan and write
    their own chains, from the record, and finish."""
    rest = firewall.natset_from_json(last["held"][backend.name][:1] + [[]] + last["held"][backend.name][2:])
    old, new = (rest._replace(services=changed) for changed in changes)
    want, transactions = backend.plans(backend.render(old), new, kinds)
    refused = backend.refused(transactions)
    if refused:
        raise ValueError(refused)
    apply(module, {backend.name: backend}, runner, transactions, old.services, new.services, rest.node_addresses)
    module.canary = last["canary"]  # the restore canary probes a jump or base chain, which no endpoint changes
    if not module.check_mode:
        exact = backend.drawing(new).same(want.detail)
        nat_record.keep_record(record, mark, len(transactions), "present", module.params["netns"], dict(
            entry, held=nat_record.held_after(last, backend.name, new.services) if exact else None,
            result=last["result"], canary=module.canary))
    module.finish(transactions=[tx.public() for tx in transactions], sync="partial", **last["result"])


def apply(module: PodnetModule, backends: dict, runner: command.Runner, transactions: list, before: tuple,
          after: tuple, addresses: tuple) -> None:
    """Run the transactions, then flush the UDP flows to endpoints they took away (services.conntrack_flushes)."""
    flushes = services.conntrack_flushes(before, after, addresses)
    if flushes and not runner.available("conntrack"):
        module.warn("conntrack (conntrack-tools) is not installed: UDP flows to removed endpoints are not "
                    "flushed and keep going there until they time out")
        flushes = []
    module.apply([Action(tx.description, lambda tx=tx: backends[tx.backend].apply(tx)) for tx in transactions]
                 + [Action(flush.description, lambda flush=flush: flush_flows(runner, flush)) for flush in flushes])


# conntrack -D finding nothing to delete, or a flow that ended between its listing and its delete (it is gone,
# as asked): no error.
GONE = ("0 flow entries have been deleted", "such conntrack doesn't exist")


def flush_flows(runner: command.Runner, flush: services.Flush) -> None:
    """conntrack -D; a flow already gone is no error (GONE)."""
    rc, out, err = runner.run(flush.argv)
    said = (err or "") + (out or "")
    if rc != 0 and not any(text in said for text in GONE):
        raise command.failure(flush.argv, rc, out, err)


if __name__ == "__main__":
    main()
