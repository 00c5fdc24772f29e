#!/usr/bin/python
# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
module: nat_rule
short_description: Manage a namespace's pod NAT (masquerade) as one owned firewall set
version_added: 0.1.0
description:
  - Masquerades pod egress in O(netns), like seed lab 3's
    C(iptables -t nat -I POSTROUTING -s 192.168.10.0/24 ! -o br0 -j MASQUERADE), with the cluster and
    other no-masquerade networks left alone as kindnet's C(--no-masquerade-cidr) does.
  - "With O(backend=iptables) everything lives in chains of table C(nat) named C(HANDCNI-*): today
    C(HANDCNI-POSTROUTING), entered from C(POSTROUTING) by one rule with the comment C(handcni.podnet)
    (inserted first in the chain when missing). Every rule carries a comment starting with C(handcni.podnet).
    One C(iptables-restore --noflush) rewrites our chains whole and adds or deletes only our jump rules;
    no other rule is named, so rules made by anyone else stay as they are."
  - With O(backend=nftables) everything lives in the table C(ip handcni), replaced whole by one C(nft -f -)
    transaction. No other table is touched.
  - The module reads our chains (C(iptables-save -t nat)) or table (C(nft -j list table ip handcni)), renders
    the wanted ones in the same canonical form and compares them, so a second run reports no change and a rule
    of ours changed or deleted by hand is put back.
  - Ours found in the other backend (after switching O(backend)) is removed in the same run; with
    O(prune=false), masquerade entries found there that are not listed move over to O(backend).
  - A masquerade entry is identified by its O(masquerade[].source). Entries of ours that are not listed are
    kept unless O(prune=true). When no entry is left, our chains and jump, or our table, are removed.
  - The firewall tools run inside O(netns) through C(nsenter --net=/run/netns/NAME), with argument lists
    and their input on stdin; no shell is involved.
author: handcni.podnet team (@handcni)
extends_documentation_fragment:
  - handcni.podnet.common
  - handcni.podnet.common.attributes
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
      - Sources must not overlap, so each packet belongs to one entry.
      - With O(state=absent), only the sources matter; with no entry listed, every entry of ours is removed.
    type: list
    elements: dict
    default: []
    suboptions:
      source:
        description: Source network in CIDR form, usually the node's pod CIDR. V(0.0.0.0/0) means any source.
        type: str
        required: true
      exclude:
        description:
          - Destination networks never masqueraded, such as the cluster CIDR and the no-masquerade CIDRs.
          - Normalised as the kernel keeps them, sorted and with overlapping and adjacent networks merged.
        type: list
        elements: str
        default: []
      out_interface_not:
        description:
          - Leave traffic alone that goes out through this interface, such as the pod bridge C(br0).
          - Letters, digits, V(_), V(.) and V(-) only.
        type: str
notes:
  - IPv4 only for now; IPv6 pod networks will use C(ip6tables) and a C(table ip6 handcni).
  - The kernel must forward (C(net.ipv4.ip_forward=1), see M(handcni.podnet.sysctl)) for pod egress to work.
  - Check mode runs only the reading commands.
seealso:
  - module: handcni.podnet.sysctl
  - module: handcni.podnet.route
  - name: kindnet masquerade agent
    description: The no-masquerade-CIDR design this follows.
    link: https://github.com/kubernetes-sigs/kindnet
"""

EXAMPLES = r"""
- name: Pod egress through the node's address, not for pod-to-pod traffic (seed lab 3)
  handcni.podnet.nat_rule:
    masquerade:
      - source: 192.168.10.0/24
        exclude: [192.168.0.0/19]  # the cluster CIDR: every node's pod CIDR, not the node network
        out_interface_not: br0
    prune: true

- name: The same with nftables; ours in iptables is removed in the same run
  handcni.podnet.nat_rule:
    backend: nftables
    masquerade:
      - source: "{{ podnet_pod_cidr }}"
        exclude: "{{ [podnet_cluster_cidr] + podnet_no_masquerade_cidrs }}"
    prune: true

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
  description: One line per firewall transaction run, or in check mode that would be run.
  returned: always
  type: list
  elements: str
  sample: ["iptables-restore --noflush: table nat: add jump POSTROUTING -> HANDCNI-POSTROUTING,
            write chain HANDCNI-POSTROUTING (2 rules)"]
masquerade:
  description: The masquerade entries of ours after the run (in check mode, after a real run), normalised.
  returned: always
  type: list
  elements: dict
  sample: [{source: 192.168.10.0/24, exclude: [192.168.0.0/19], out_interface_not: br0}]
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
    Our rules per backend before and after, as canonical lines: C(iptables-save) style for iptables,
    C(nft add ...) statements for nftables.
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
      nftables: []
"""

from ansible_collections.handcni.podnet.plugins.module_utils import _firewall as firewall
from ansible_collections.handcni.podnet.plugins.module_utils._module import Action, PodnetModule


def main():
    module = PodnetModule(
        argument_spec=dict(
            backend=dict(type="str", default="iptables", choices=list(firewall.BACKENDS)),
            masquerade=dict(type="list", elements="dict", default=[], options=dict(firewall.MASQUERADE_SPEC)),
        ),
    )
    params = module.params
    chosen, state = params["backend"], params["state"]
    with module.errors():
        listed = firewall.normalise_masquerades(params["masquerade"], "masquerade")
        runner = firewall.Runner(module.run_command, module.get_bin_path, params["netns"])
        backends = {name: cls(runner) for name, cls in firewall.BACKENDS.items()}
        if state == "present" and not backends[chosen].available():
            raise ValueError(f"backend: {chosen} needs {' and '.join(backends[chosen].tools)} on the node; "
                             "install it or choose the other backend")
        # The chosen backend first: it is written before the other one is emptied.
        names = [name for name in [chosen] + [n for n in backends if n != chosen] if backends[name].available()]
        have = {name: backends[name].read() for name in names}
        if state == "present":
            found = [entry for name in names for entry in have[name].masquerade]
            nat = firewall.wanted(listed, found, "present", params["prune"])
            targets = {name: nat if name == chosen else firewall.NatSet() for name in names}
        else:
            targets = {name: firewall.wanted(listed, have[name].masquerade, "absent", False) for name in names}
        plans = [backends[name].plan(have[name], targets[name]) for name in names]
        transactions = [tx for tx in plans if tx is not None]
        module.before = {name: have[name].lines for name in names}
        module.after = {name: tx.after if tx else have[name].lines for name, tx in zip(names, plans)}
        module.apply([Action(tx.description, lambda tx=tx: backends[tx.backend].apply(tx)) for tx in transactions])
    remaining = sorted({entry for nat in targets.values() for entry in nat.masquerade}, key=firewall.source_order)
    module.finish(masquerade=[entry.public() for entry in remaining],
                  transactions=[tx.public() for tx in transactions])


if __name__ == "__main__":
    main()
