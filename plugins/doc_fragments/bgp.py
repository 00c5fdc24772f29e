# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations


class ModuleDocFragment:
    # The BGP speaker both handcni.podnet.bird_bgp and handcni.podnet.frr_bgp configure.
    DOCUMENTATION = r"""
options:
  router_id:
    description: The router id, an IPv4 address, usually the node's own. Required with O(state=present).
    type: str
  local_as:
    description:
      - The local AS number, 1 to 4294967295. Required with O(state=present).
      - A neighbour with the same AS is an iBGP neighbour, any other an eBGP one.
    type: int
  networks:
    description:
      - Networks this speaker originates and announces (to the neighbours whose O(neighbors[].export_prefixes)
        let them through), such as the node's pod CIDR.
    type: list
    elements: str
    default: []
  max_paths:
    description:
      - Equal-cost multipath (ECMP) - how many equally good routes to one prefix, learned from different
        neighbours, are installed together in the kernel (1 to 64; V(1) installs the best one only). A leaf to
        which several nodes announce the same service address sets it, so flows spread over those nodes.
      - BIRD merges them on export to the kernel (C(merge paths on limit N)); FRR takes C(maximum-paths N)
        (and C(maximum-paths ibgp N)) and relaxes the AS-path comparison (C(bgp bestpath as-path multipath-relax)),
        so paths from nodes with their own AS count as equal.
    type: int
    default: 1
  neighbors:
    description: The BGP neighbours, one session each.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The neighbour's name (a letter or V(_), then letters, digits or V(_), at most 32), used for BIRD's
            protocol and FRR's prefix lists; defaults to C(peer_) and the address with V(_) for dots and colons.
        type: str
      address:
        description:
          - The neighbour's IPv4 or IPv6 address. Required.
          - The session's family - its O(neighbors[].source_address), its prefix rules and the routes it carries
            are of it. Dual stack is two neighbours, one per family.
        type: str
      remote_as:
        description: The neighbour's AS number, 1 to 4294967295. Required.
        type: int
        aliases: [as]
      source_address:
        description: Our address for the session (BIRD C(source address), FRR C(update-source)).
        type: str
      password:
        description:
          - TCP MD5 password of the session (RFC 2385); both ends must have the same one.
          - 1 to 80 printable ASCII characters without space, quote or backslash. Never shown in output or diff.
        type: str
      description:
        description: Free text describing the neighbour.
        type: str
      import_prefixes:
        description:
          - Which routes are accepted from the neighbour, as ordered prefix rules; the first rule that matches
            a route decides, and a route no rule matches is rejected. An empty list accepts nothing.
          - A rule is a network in CIDR form (that network exactly), or a dictionary with C(prefix) (a network
            in CIDR form), C(ge) and C(le) (the shortest and longest lengths matched inside it; C(ge) defaults to
            the prefix's length, C(le) to 32 (128 for IPv6) when C(ge) is given and to the prefix's length otherwise) and
            C(action) (V(permit), the default, or V(deny)).
          - "Example: C([{prefix: 192.168.20.0/24, action: deny}, {prefix: 192.168.0.0/16, ge: 24, le: 24}])."
        type: list
        elements: raw
        default: []
        aliases: [import]
      export_prefixes:
        description:
          - Which routes are announced to the neighbour, as rules like O(neighbors[].import_prefixes).
          - An empty list announces nothing.
        type: list
        elements: raw
        default: []
        aliases: [export]
      import_limit:
        description:
          - Most routes accepted from the neighbour; over it the session is restarted (BIRD C(import limit N
            action restart), FRR C(maximum-prefix N restart 1)). V(0) means no limit.
        type: int
        default: 0
      graceful_restart:
        description: Graceful restart (RFC 4724) with this neighbour.
        type: bool
        default: true
      route_reflector_client:
        description: The neighbour is a route reflector client of ours (iBGP only).
        type: bool
        default: false
      next_hop_self:
        description: Announce our own address as next hop, also for routes we reflect.
        type: bool
        default: false
      multihop:
        description: The neighbour is this many hops away (eBGP multihop); omit for a directly connected one.
        type: int
      passive:
        description: Wait for the neighbour to connect; never open the session ourselves.
        type: bool
        default: false
      hold_time:
        description: BGP hold time in seconds (V(0), or at least V(3)); the daemon's default when omitted.
        type: int
      keepalive_time:
        description: Seconds between keepalives, less than O(neighbors[].hold_time).
        type: int
      connect_retry_time:
        description:
          - Seconds between attempts to open the session.
          - With BIRD also the first wait after a session error (C(error wait time N, 300)), which BIRD
            otherwise starts at 60 seconds.
        type: int
      bfd:
        description:
          - Bidirectional Forwarding Detection (RFC 5880) on the session; the peer is taken as down once
            O(neighbors[].bfd.multiplier) packets of O(neighbors[].bfd.interval) are missed, well before
            the hold time runs out. Omit for none.
          - BIRD runs it in its C(bfd) protocol (C(bfd { ... }) in the session); FRR in C(bfdd), with the
            timers in the session (C(neighbor ADDRESS bfd 3 100 100)).
        type: dict
        suboptions:
          interval:
            description: Milliseconds between the packets sent, and expected from the peer (10 to 60000).
            type: int
            default: 100
          multiplier:
            description: Packets missed before the session is down (2 to 255).
            type: int
            default: 3
          graceful:
            description:
              - BIRD only, C(bfd { graceful; ... }) in the session. A BFD failure restarts the session gracefully, keeping
                the peer's routes as stale, instead of taking it down. For a node's session to its leaf, so
                that a restarting leaf does not cost the node its routes; never for the leaf's sessions, whose
                point is to withdraw a dead node at once. FRR ignores it.
            type: bool
            default: false
  wait_established:
    description:
      - After applying, wait until the session of every listed neighbour is established; fail after
        O(wait_timeout) seconds naming each neighbour that is not, with its state and the daemon's last error.
      - Not done in check mode.
    type: bool
    default: false
  wait_timeout:
    description: Seconds O(wait_established) waits.
    type: int
    default: 60
"""
