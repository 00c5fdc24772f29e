#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: network_policy
short_description: Enforce Kubernetes NetworkPolicy allow lists for a node's pods as owned firewall rules
version_added: 0.1.0
description:
  - Enforces, in the node's forward path, what Kubernetes NetworkPolicies allow this node's pods, from the per-pod
    allow lists the C(handcni.podnet.network_policy_rules) filter compiles them into (the network_policy role).
  - Traffic forwarded to the IP of a pod isolated for ingress, or from the IP of a pod isolated for egress, is
    dropped unless a rule of that direction allows it. Replies of allowed connections pass (conntrack
    C(ESTABLISHED,RELATED)). Traffic between two pods of the node is checked twice, against the source's egress
    and the destination's ingress. The node's own traffic to its pods and from them (C(OUTPUT), C(INPUT)) is not
    filtered, so kubelet's probes always pass.
  - Rules match addresses, not interfaces. Ingress is checked after service DNAT and egress before masquerade,
    as the forward hook sits between them. Pods on a bridge reach each other through the forward hook only with
    C(br_netfilter) (C(net.bridge.bridge-nf-call-iptables=1)); routed pods (veth and a /32 route) always do.
  - "With O(backend=iptables) the rules live in table C(filter): the chain C(HANDCNI-POLICY), entered by one rule
    C(iptables -I FORWARD -m comment --comment handcni.podnet -j HANDCNI-POLICY) inserted first when missing,
    returns established and related traffic, then sends each isolated pod's traffic to its chain, like
    C(iptables -A HANDCNI-POLICY -d 192.168.10.3/32 -j HANDCNI-IN-192.168.10.3) and
    C(-s 192.168.10.3/32 -j HANDCNI-EG-192.168.10.3). A pod chain returns what a rule allows, one rule per peer,
    protocol and port range, like C(iptables -A HANDCNI-IN-192.168.10.3 -s 192.168.10.1/32 -p tcp -m tcp --dport 80
    -j RETURN), and drops the rest (C(-j DROP)). Nothing of ours accepts, so the other rules of C(FORWARD) still
    see every packet. Every rule carries a comment starting with C(handcni.podnet)."
  - "With O(backend=nftables) the rules live in the table C(inet handcni-policy). Its base chain C(forward)
    (C(type filter hook forward priority filter; policy accept)) accepts C(ct state established,related) (an
    accept in our table ends only our table; other tables still judge the packet), then jumps through the
    verdict maps C(ingress) (C(ip daddr vmap @ingress)) and C(egress) (C(ip saddr vmap @egress)) to the chains
    C(ingress-IP) and C(egress-IP), like C(ip saddr { 10.0.0.0/8, 192.168.10.1 } tcp dport { 80, 8000-8080 }
    return) then C(drop)."
  - The module reads what is ours (C(iptables-save -t filter), C(nft -j list table inet handcni-policy)), renders
    the wanted rules in the same canonical form and compares them, so a second run reports no change and a rule
    of ours changed or deleted by hand is put back. One C(iptables-restore --noflush) writes only the chains of
    ours that differ; with nftables one C(nft -f -) transaction replaces our table whole. No other chain or
    table is touched.
  - O(pods) is the whole set, so rules of ours for pods no longer listed are removed. Ours found in the other
    backend (after switching O(backend)) is removed in the same run.
  - The firewall tools run inside O(netns) through C(nsenter --net=/run/netns/NAME), with argument lists and their
    input on stdin; no shell is involved.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.common.attributes
  - handcni.podnet.common.restore
options:
  netns:
    description:
      - Named network namespace (as in C(ip netns list)) to act in; it must exist.
      - Omit to act in the namespace the module runs in (the node itself).
    type: str
  state:
    description:
      - V(present) makes our rules exactly those O(pods) needs.
      - V(absent) removes every rule of ours, from every backend whose tools are installed; O(pods) is not used.
    type: str
    choices: [present, absent]
    default: present
  backend:
    description:
      - The firewall to write to. V(iptables) needs C(iptables-save) and C(iptables-restore) (either the
        nf_tables or the legacy variant), V(nftables) needs C(nft).
    type: str
    choices: [iptables, nftables]
    default: iptables
  pods:
    description:
      - This node's pods and what they may talk to, all of them; pods not listed get no rules.
      - Normalised (rules deduplicated and sorted, networks collapsed, port ranges merged), so equal allow lists
        give equal rules whatever their order.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The pod as C(namespace/name), such as V(default/netns3); used in the rules' comments only (shortened
            there beyond 80 characters). Letters, digits, V(_), V(.), V(-) and V(/).
        type: str
        required: true
      ip:
        description: The pod's IPv4 address; each pod's must be different.
        type: str
        required: true
      ingress:
        description:
          - What may reach the pod. Null (or not given) leaves the pod open (no rules); a list isolates it, and only
            what matches one of its rules is allowed, so an empty list denies all ingress.
        type: list
        elements: dict
        suboptions:
          peers:
            description:
              - The source networks in CIDR form (an address alone is a /32), such as the /32s of the pods a selector
                chose and an ipBlock less its C(except). Null means any address; an empty list matches nothing.
            type: list
            elements: str
          ports:
            description:
              - The destination ports. Null means every protocol and port (ICMP too); an empty list matches nothing.
            type: list
            elements: dict
            suboptions:
              protocol:
                description: V(tcp), V(udp) or V(sctp) (upper case accepted, as Kubernetes writes them).
                type: str
                default: tcp
              port:
                description: The port (1-65535); null means every port of O(pods[].ingress[].ports[].protocol).
                type: int
              end_port:
                description: With O(pods[].ingress[].ports[].port), the last port of a range (as C(endPort)).
                type: int
      egress:
        description:
          - What the pod may reach, as O(pods[].ingress) with destinations for peers. Null leaves the pod open; an
            empty list denies all egress (but for replies, and traffic to its own node).
        type: list
        elements: dict
        suboptions:
          peers:
            description: The destination networks in CIDR form. Null means any address; an empty list matches nothing.
            type: list
            elements: str
          ports:
            description: The destination ports. Null means every protocol and port; an empty list matches nothing.
            type: list
            elements: dict
            suboptions:
              protocol:
                description: V(tcp), V(udp) or V(sctp).
                type: str
                default: tcp
              port:
                description: The port (1-65535); null means every port of the protocol.
                type: int
              end_port:
                description: With O(pods[].egress[].ports[].port), the last port of a range.
                type: int
requirements:
  - pyroute2 >= 0.9 on the managed node
  - Linux, root (CAP_NET_ADMIN)
notes:
  - IPv4 only for now.
  - Pods on a bridge are filtered against each other only with C(br_netfilter) loaded and
    C(net.bridge.bridge-nf-call-iptables=1) (see M(handcni.podnet.sysctl)), which kube-proxy needs as well.
  - Check mode runs only the reading commands.
  - With O(backend=iptables) and iptables-nft, our first rule makes nftables' C(table ip filter) if it did not
    exist; removing our last rule removes it again when nothing else is in it (a mark in C(/run/handcni) says we
    made it).
  - With O(backend=iptables), a node where rules of others are in the other iptables variant is refused before
    any change, as with M(handcni.podnet.nat_rule).
seealso:
  - module: handcni.podnet.nat_rule
  - module: handcni.podnet.sysctl
  - name: Kubernetes NetworkPolicy
    description: The semantics enforced.
    link: https://kubernetes.io/docs/concepts/services-networking/network-policies/
"""

EXAMPLES = r"""
- name: netns3 takes HTTP from netns1 only and reaches nothing but the DNS pods; netns1 takes no connection at all
  handcni.podnet.network_policy:
    pods:
      - name: default/netns3
        ip: 192.168.10.3
        ingress:
          - peers: [192.168.10.1/32]
            ports: [{protocol: tcp, port: 80}]
        egress:
          # the DNS service's endpoints, not its cluster IP: egress is judged after the service's DNAT
          - peers: [192.168.20.53/32, 192.168.30.53/32]
            ports: [{protocol: udp, port: 53}, {protocol: tcp, port: 53}]
      - name: default/netns1
        ip: 192.168.10.1
        ingress: []

- name: Any client but 10.0.0.0/8 (an ipBlock with except), on a range of ports, with nftables; ours in iptables goes
  handcni.podnet.network_policy:
    backend: nftables
    pods:
      - name: shop/web
        ip: 192.168.20.4
        ingress:
          - peers: [0.0.0.0/5, 8.0.0.0/7, 11.0.0.0/8, 12.0.0.0/6, 16.0.0.0/4, 32.0.0.0/3, 64.0.0.0/2, 128.0.0.0/1]
            ports: [{protocol: tcp, port: 8000, end_port: 8080}]

- name: What the network_policy role runs, from the inventory's NetworkPolicies
  handcni.podnet.network_policy:
    backend: "{{ podnet_firewall_backend }}"
    pods: "{{ podnet_network_policies | handcni.podnet.network_policy_rules(hostvars, groups['workers'],
             inventory_hostname, podnet_namespaces) }}"

- name: Remove every policy rule of ours, in both backends
  handcni.podnet.network_policy:
    state: absent
"""

RETURN = r"""
actions:
  description: One line per firewall transaction run, or in check mode that would be run.
  returned: always
  type: list
  elements: str
  sample: ["iptables-restore --noflush: table filter: add jump FORWARD -> HANDCNI-POLICY, write chain HANDCNI-IN-192.168.10.1
            (1 rule), write chain HANDCNI-IN-192.168.10.3 (2 rules), write chain HANDCNI-POLICY (3 rules)"]
pods:
  description: >-
    The pods and their allow lists as enforced, normalised and sorted by IP (empty with O(state=absent)). Rules
    that match nothing are left out; a port range is one entry per protocol and range; a rule's number among
    its pod's rules of a direction is the one the rules' comments give.
  returned: always
  type: list
  elements: dict
  sample:
    - name: default/netns1
      ip: 192.168.10.1
      ingress: []
      egress: null
    - name: default/netns3
      ip: 192.168.10.3
      ingress:
        - peers: [192.168.10.1/32]
          ports: [{protocol: tcp, port: 80, end_port: null}]
      egress: null
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
      input: "add table inet handcni-policy\ndelete table inet handcni-policy\nadd table inet handcni-policy\n..."
diff:
  description: >-
    Our rules per backend before and after, as canonical lines: C(iptables-save) style for iptables,
    C(nft add ...) statements for nftables.
  returned: when diff mode is on
  type: dict
  sample:
    before: {iptables: [], nftables: []}
    after:
      iptables:
        - ":HANDCNI-IN-192.168.10.1 - [0:0]"
        - ":HANDCNI-POLICY - [0:0]"
        - -A FORWARD -m comment --comment handcni.podnet -j HANDCNI-POLICY
        - -A HANDCNI-IN-192.168.10.1 -m comment --comment "handcni.podnet ingress default/netns1" -j DROP
        - -A HANDCNI-POLICY -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "handcni.podnet replies"
          -j RETURN
        - -A HANDCNI-POLICY -d 192.168.10.1/32 -m comment --comment "handcni.podnet ingress default/netns1"
          -j HANDCNI-IN-192.168.10.1
      nftables: []
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _command as command
from ansible_collections.handcni.podnet.plugins.module_utils import _firewall as firewall
from ansible_collections.handcni.podnet.plugins.module_utils import _policy_rules as rules
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule
from ansible_collections.handcni.podnet.plugins.module_utils._state import STATE_DIR, locked

LOCK = f"{STATE_DIR}/network_policy"  # .lock: beside the other records of ours, which teardown removes


def main():
    module = PodnetModule(
        argument_spec=dict(
            backend=dict(type="str", default="iptables", choices=list(rules.BACKENDS)),
            pods=dict(type="list", elements="dict", default=[], options=dict(rules.POD_SPEC)),
        ),
        common=("netns", "state", "restore"),  # the list is always the whole set: nothing to prune
    )
    params = module.params
    chosen, state = params["backend"], params["state"]
    pods = ()
    # One run at a time per node: read, plan and write must not interleave with another run's.
    with module.errors(), locked(LOCK, create=state == "present" and not module.check_mode):
        if state == "present":
            pods = rules.normalise_pods(params["pods"])
        runner = command.Runner.of(module, params["netns"])
        backends, names = firewall.backends_in_order(rules.BACKENDS, runner, chosen, state == "present")
        have = {name: backends[name].read() for name in names}
        plans = [backends[name].plan(have[name], pods if name == chosen else ()) for name in names]
        transactions = [tx for tx in plans if tx is not None]
        if module._diff:
            module.before = {name: have[name].lines for name in names}
            module.after = {name: tx.after if tx else have[name].lines for name, tx in zip(names, plans)}
        module.apply([Action(tx.description, lambda tx=tx: backends[tx.backend].apply(tx)) for tx in transactions])
        if params["restore"] and params["netns"] is None:  # the probe runs on the node, without nsenter
            probe = backends[chosen].probe(backends[chosen].render(pods).detail)
            module.canary["commands"] = [probe] if probe else []
    module.finish(transactions=[tx.public() for tx in transactions], pods=[pod.public() for pod in pods])


if __name__ == "__main__":
    main()
