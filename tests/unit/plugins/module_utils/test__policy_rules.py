"""Unit tests for plugins/module_utils/_policy_rules.py: the network_policy module's validation, rendering,
reading back and planning, for both backends.

fixtures/policy_nft.json and fixtures/policy_iptables.txt are real output of nftables 1.0.6 and iptables 1.8.9
(nf_tables), captured in a throwaway network namespace after writing PODS with this code (iptables-save -c,
with someone else's FORWARD rule and an empty HANDCNI-OTHER chain beside ours).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansible_collections.handcni.podnet.plugins.module_utils import _command as command
from ansible_collections.handcni.podnet.plugins.module_utils import _iptables as ipt
from ansible_collections.handcni.podnet.plugins.module_utils import _policy_rules as pr

FIXTURES = Path(__file__).parent / "fixtures"
NFT_JSON = (FIXTURES / "policy_nft.json").read_text()
IPTABLES_SAVE = (FIXTURES / "policy_iptables.txt").read_text()

PODS = [
    {"name": "default/netns1", "ip": "192.168.10.1", "ingress": []},
    {"name": "default/netns3", "ip": "192.168.10.3",
     "ingress": [{"peers": ["192.168.10.1/32", "10.0.0.0/8"],
                  "ports": [{"protocol": "tcp", "port": 80}, {"protocol": "tcp", "port": 8000, "end_port": 8080}]},
                 {"peers": None, "ports": [{"protocol": "udp", "port": None}]}],
     "egress": [{"peers": ["10.96.0.10/32"], "ports": [{"protocol": "udp", "port": 53}, {"protocol": "sctp", "port": 9000}]},
                {"peers": ["192.168.20.0/24"]}]},
]
NFT = pr.NftablesPolicy(None)
IPT = pr.IptablesPolicy(None)


def pods(items=None):
    return pr.normalise_pods(PODS if items is None else items)


def pod(**rules) -> list:
    return [dict({"name": "default/a", "ip": "192.168.10.5"}, **rules)]


# --- validation and normalisation ---------------------------------------------------

@pytest.mark.parametrize("items, message", [
    ("x", "pods: must be a list or null, got 'x'"),
    (["x"], "pods[0]: must be a mapping with name, ip, ingress, egress, got 'x'"),
    ([{"name": "a", "ip": "192.168.10.5", "labels": {}}], "pods[0].labels: unknown key"),
    ([{"name": "a b", "ip": "192.168.10.5"}], "pods[0].name: 'a b' is not a pod name like default/netns3"),
    ([{"name": None, "ip": "192.168.10.5"}], "pods[0].name: None is not a pod name"),
    ([{"name": "a", "ip": "192.168.10.300"}], "pods[0].ip: '192.168.10.300' is not a valid IP address"),
    ([{"name": "a", "ip": "192.168.10.5/32"}], "pods[0].ip: '192.168.10.5/32' is not a valid IP address"),
    ([{"name": "a", "ip": "fd00::5"}], "pods[0].ip: 'fd00::5' is not an IPv4 address"),
    ([{"name": "a", "ip": "192.168.10.5"}, {"name": "b", "ip": "192.168.10.5"}],
     "pods[1].ip: 192.168.10.5 is also pods[0].ip"),
    (pod(ingress={"peers": None}), "pods[0].ingress: must be a list or null"),
    (pod(ingress=[{"from": []}]), "pods[0].ingress[0].from: unknown key (known: peers, ports)"),
    (pod(egress=[{"peers": ["10.0.0.0/33"]}]), "pods[0].egress[0].peers[0]: '10.0.0.0/33' is not a valid network"),
    (pod(egress=[{"peers": ["10.0.0.1/8"]}]), "pods[0].egress[0].peers[0]: '10.0.0.1/8' is not a valid network"),
    (pod(egress=[{"peers": ["fd00::/64"]}]), "pods[0].egress[0].peers[0]: 'fd00::/64' is not an IPv4 network"),
    (pod(ingress=[{}, {"ports": [{"protocol": "icmp"}]}]),
     "pods[0].ingress[1].ports[0].protocol: 'icmp' is not one of sctp, tcp, udp"),
    (pod(ingress=[{"ports": [{"port": 0}]}]), "pods[0].ingress[0].ports[0].port: 0 is out of range 1..65535"),
    (pod(ingress=[{"ports": [{"port": 65536}]}]), "pods[0].ingress[0].ports[0].port: 65536 is out of range 1..65535"),
    (pod(ingress=[{"ports": [{"port": "http"}]}]), "pods[0].ingress[0].ports[0].port: 'http' is not a whole number"),
    (pod(ingress=[{"ports": [{"port": 80}, {"port": 80, "end_port": 70}]}]),
     "pods[0].ingress[0].ports[1].end_port: 70 is below port 80"),
    (pod(ingress=[{"ports": [{"end_port": 90}]}]), "pods[0].ingress[0].ports[0].end_port: 90 needs port"),
    (pod(egress=[{"ports": [{"port": 80, "end_port": 70000}]}]),
     "pods[0].egress[0].ports[0].end_port: 70000 is out of range 1..65535"),
])
def test_bad_input_is_one_line_naming_the_field(items, message):
    with pytest.raises(ValueError) as err:
        pr.normalise_pods(items)
    assert str(err.value).startswith(message) and "\n" not in str(err.value), str(err.value)


def test_normalised_sorted_collapsed_merged():
    given = [
        {"name": "b", "ip": "192.168.10.20", "egress": None},
        {"name": "a", "ip": "192.168.10.3", "ingress": [
            {"peers": ["10.1.0.0/16", "10.0.0.0/16"], "ports": [
                {"protocol": "TCP", "port": 90, "end_port": 95}, {"protocol": "tcp", "port": 80, "end_port": 89},
                {"port": 100}, {"protocol": "udp", "port": 53}, {"protocol": "udp", "port": None}]},
            {"peers": ["0.0.0.0/0"], "ports": None},
            {"peers": [], "ports": None},        # matches nothing: left out
            {"peers": None, "ports": []},        # the same
            # the same as the first, written otherwise: one rule
            {"peers": ["10.0.0.0/15"], "ports": [{"protocol": "udp"}, {"protocol": "tcp", "port": 80, "end_port": 95},
                                                 {"port": 100}]},
        ]},
    ]
    assert [p.public() for p in pr.normalise_pods(given)] == [
        {"name": "a", "ip": "192.168.10.3", "egress": None, "ingress": [
            {"peers": None, "ports": None},
            {"peers": ["10.0.0.0/15"], "ports": [{"protocol": "tcp", "port": 80, "end_port": 95},
                                                 {"protocol": "tcp", "port": 100, "end_port": None},
                                                 {"protocol": "udp", "port": None, "end_port": None}]}]},
        {"name": "b", "ip": "192.168.10.20", "ingress": None, "egress": None},
    ]
    # duplicates collapse, whatever the order
    assert pr.normalise_pods(list(reversed(given))) == pr.normalise_pods(given)


def test_only_empty_rules_deny_all():
    assert pr.normalise_pods(pod(ingress=[{"peers": []}]))[0].ingress == ()


def test_a_long_name_is_shortened_in_comments_only():
    name = "ns/" + "p" * 200
    [normalised] = pr.normalise_pods([{"name": name, "ip": "10.0.0.1", "ingress": []}])
    assert normalised.public()["name"] == name
    assert len(normalised.comment("ingress")) <= 128 - len(" rule 999") and normalised.comment("ingress").endswith("...")


def test_merge_ranges():
    assert pr.merge_ranges([(90, 95), (80, 89), (100, 100), (99, 99), (1, 2)]) == ((1, 2), (80, 95), (99, 100))


# --- nftables ------------------------------------------------------------------------

def test_nft_render():
    lines = NFT.render(pods()).lines
    prefix = "add rule inet handcni-policy"
    assert lines[0] == "add table inet handcni-policy"
    for line in [
        "add chain inet handcni-policy forward { type filter hook forward priority 0; policy accept; }",
        f'{prefix} forward ct state established,related accept comment "handcni.podnet replies"',
        f'{prefix} forward ip daddr vmap @ingress comment "handcni.podnet ingress"',
        f'{prefix} forward ip saddr vmap @egress comment "handcni.podnet egress"',
        "add element inet handcni-policy ingress { 192.168.10.1 : jump ingress-192.168.10.1 }",
        "add element inet handcni-policy egress { 192.168.10.3 : jump egress-192.168.10.3 }",
        f'{prefix} ingress-192.168.10.1 drop comment "handcni.podnet ingress default/netns1"',
        f'{prefix} ingress-192.168.10.3 meta l4proto udp return comment "handcni.podnet ingress default/netns3 rule 0"',
        f'{prefix} ingress-192.168.10.3 ip saddr {{ 10.0.0.0/8, 192.168.10.1 }} tcp dport {{ 80, 8000-8080 }} return '
        'comment "handcni.podnet ingress default/netns3 rule 1"',
        f'{prefix} egress-192.168.10.3 ip daddr 10.96.0.10 sctp dport 9000 return '
        'comment "handcni.podnet egress default/netns3 rule 0"',
        f'{prefix} egress-192.168.10.3 ip daddr 192.168.20.0/24 return comment "handcni.podnet egress default/netns3 rule 1"',
    ]:
        assert line in lines, line
    chain = [line for line in lines if line.startswith(f"{prefix} ingress-192.168.10.3 ")]
    assert chain[-1].endswith('drop comment "handcni.podnet ingress default/netns3"') and len(chain) == 3
    assert "egress-192.168.10.1" not in "\n".join(lines)  # netns1 is open for egress: no chain


def test_nft_json_reads_back_as_rendered():
    have = NFT.parse(NFT_JSON)
    assert have.lines == NFT.render(pods()).lines
    assert NFT.plan(have, pods()) is None
    assert NFT.plan(have, list(reversed(pods()))) is None


@pytest.mark.parametrize("edit", [
    lambda t: t.replace('"len": 8', '"len": 9'),                         # a peer changed by hand
    lambda t: t.replace('{"drop": null}', '{"accept": null}', 1),        # a verdict
    lambda t: t.replace('"prio": 0', '"prio": 10'),                      # the base chain's priority
    lambda t: t.replace('"comment": "handcni.podnet replies", ', ""),    # a comment
    lambda t: t.replace('{"return": null}', '{"counter": {"packets": 0, "bytes": 0}}, {"return": null}', 1),
])
def test_nft_drift_is_seen(edit):
    drifted = edit(NFT_JSON)
    assert drifted != NFT_JSON
    assert NFT.plan(NFT.parse(drifted), pods()) is not None


def test_nft_unrecognised_is_kept_visible():
    data = json.loads(NFT_JSON)
    data["nftables"].append({"set": {"family": "inet", "table": "handcni-policy", "name": "x", "type": "ipv4_addr"}})
    data["nftables"].append({"rule": {"family": "inet", "table": "handcni-policy", "chain": "forward",
                                      "expr": [{"limit": {"rate": 1}}]}})
    lines = NFT.parse(json.dumps(data)).lines
    assert any(line.startswith("# unrecognised") and '"set"' in line for line in lines)
    assert 'add rule inet handcni-policy forward # unrecognised [{"limit": {"rate": 1}}]' in lines


@pytest.mark.parametrize("right, text", [
    (80, "80"), ({"range": [80, 90]}, "80-90"), ({"set": [81, 80, {"range": [82, 90]}, 1000]}, "{ 80-90, 1000 }"),
])
def test_nft_port_expressions(right, text):
    expr = {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": right}}
    assert pr.nft_policy_term(expr) == f"tcp dport {text}"


def test_nft_script_makes_the_table_whole_in_one_transaction():
    want = NFT.render(pods())
    tx = NFT.plan(NFT.parse(None), pods())
    lines = tx.script.splitlines()
    assert lines[:3] == ["add table inet handcni-policy", "delete table inet handcni-policy",
                         "add table inet handcni-policy"]
    # chains before the maps whose elements jump to them, rules last
    assert max(i for i, l in enumerate(lines) if l.startswith("add chain")) < \
        min(i for i, l in enumerate(lines) if l.startswith("add map"))
    assert max(i for i, l in enumerate(lines) if l.startswith("add element")) < \
        min(i for i, l in enumerate(lines) if l.startswith("add rule"))
    assert tx.description == "nft -f: create table inet handcni-policy (2 pods, 4 chains, 11 rules)"
    assert tx.after == want.lines and tx.before == [] and tx.argv == ["nft", "-f", "-"]
    replaced = NFT.plan(NFT.parse(NFT_JSON), pods()[:1])
    assert replaced.description.startswith("nft -f: replace table inet handcni-policy (1 pod, 2 chains,")


def test_nft_script_deletes_the_table():
    tx = NFT.plan(NFT.parse(NFT_JSON), ())
    assert tx.script == "add table inet handcni-policy\ndelete table inet handcni-policy\n"
    assert tx.description == "nft -f: delete table inet handcni-policy" and tx.after == []


def test_nothing_isolated_is_nothing_of_ours():
    open_pods = pods([{"name": "a", "ip": "192.168.10.5"}])
    assert NFT.render(open_pods).lines == [] and IPT.render(open_pods).lines == []
    assert NFT.plan(NFT.parse(None), open_pods) is None
    assert IPT.plan(IPT.parse("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"), open_pods) is None


def test_nft_bad_json():
    with pytest.raises(ValueError, match="nft -j printed something that is not its JSON"):
        NFT.parse("Error: x")


# --- iptables ------------------------------------------------------------------------

def test_iptables_render():
    lines = IPT.render(pods()).lines
    for line in [
        ":HANDCNI-POLICY - [0:0]",
        "-A FORWARD -m comment --comment handcni.podnet -j HANDCNI-POLICY",
        '-A HANDCNI-POLICY -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "handcni.podnet replies" '
        "-j RETURN",
        '-A HANDCNI-POLICY -d 192.168.10.3/32 -m comment --comment "handcni.podnet ingress default/netns3" '
        "-j HANDCNI-IN-192.168.10.3",
        '-A HANDCNI-POLICY -s 192.168.10.3/32 -m comment --comment "handcni.podnet egress default/netns3" '
        "-j HANDCNI-EG-192.168.10.3",
        '-A HANDCNI-IN-192.168.10.3 -s 10.0.0.0/8 -p tcp -m comment --comment '
        '"handcni.podnet ingress default/netns3 rule 1" -m tcp --dport 8000:8080 -j RETURN',
        '-A HANDCNI-IN-192.168.10.3 -p udp -m comment --comment "handcni.podnet ingress default/netns3 rule 0" -j RETURN',
        '-A HANDCNI-EG-192.168.10.3 -d 192.168.20.0/24 -m comment --comment "handcni.podnet egress default/netns3 rule 1" '
        "-j RETURN",
        '-A HANDCNI-IN-192.168.10.1 -m comment --comment "handcni.podnet ingress default/netns1" -j DROP',
    ]:
        assert line in lines, line
    state = IPT.render(pods()).detail
    assert all(len(name) <= 28 for name in state.chains)
    assert [rule[-1] for rule in state.chains["HANDCNI-IN-192.168.10.3"]] == ["RETURN"] * 5 + ["DROP"]
    assert state.chains["HANDCNI-POLICY"][0][-1] == "RETURN" and "ACCEPT" not in "\n".join(lines)


def test_iptables_save_reads_back_as_rendered():
    have = IPT.parse(IPTABLES_SAVE)
    assert have.lines == IPT.render(pods()).lines
    assert IPT.plan(have, pods()) is None
    # someone else's rule and a HANDCNI- chain that is not a policy chain are not ours
    assert not any("10.9.9.0" in line or "HANDCNI-OTHER" in line for line in have.lines)


@pytest.mark.parametrize("edit", [
    lambda t: t.replace("--dport 8000:8080", "--dport 8000:8081", 1),
    lambda t: t.replace("[0:0] -A HANDCNI-IN-192.168.10.1 ", "# ", 1),   # our DROP deleted by hand
    lambda t: t.replace('[0:0] -A FORWARD -m comment --comment "handcni.podnet" -j HANDCNI-POLICY\n', ""),
    lambda t: t.replace("-j DROP", "-j ACCEPT", 1),
])
def test_iptables_drift_is_seen(edit):
    drifted = edit(IPTABLES_SAVE)
    assert drifted != IPTABLES_SAVE
    assert IPT.plan(IPT.parse(drifted), pods()) is not None


def test_iptables_script_writes_only_the_chains_that_differ():
    fewer = pods()[1:]  # netns1 no longer isolated
    tx = IPT.plan(IPT.parse(IPTABLES_SAVE), fewer)
    assert tx.script == (
        "*filter\n:HANDCNI-POLICY - [0:0]\n:HANDCNI-IN-192.168.10.1 - [0:0]\n"
        + "\n".join(ipt.ipt_line(rule) for rule in IPT.render(fewer).detail.chains["HANDCNI-POLICY"])
        + "\n-X HANDCNI-IN-192.168.10.1\nCOMMIT\n")
    assert tx.description == ("iptables-restore --noflush: table filter: write chain HANDCNI-POLICY (3 rules), "
                              "delete chain HANDCNI-IN-192.168.10.1")


def test_iptables_script_creates_and_removes_only_ours():
    made = IPT.plan(IPT.parse("*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -j ACCEPT\nCOMMIT\n"), pods())
    assert "-I FORWARD 1 -m comment --comment handcni.podnet -j HANDCNI-POLICY" in made.script.splitlines()
    gone = IPT.plan(IPT.parse(IPTABLES_SAVE), ())
    assert gone.script.splitlines()[-6:] == [
        "-D FORWARD -m comment --comment handcni.podnet -j HANDCNI-POLICY",
        "-X HANDCNI-EG-192.168.10.3", "-X HANDCNI-IN-192.168.10.1", "-X HANDCNI-IN-192.168.10.3",
        "-X HANDCNI-POLICY", "COMMIT"]
    assert "HANDCNI-OTHER" not in gone.script and "10.9.9.0" not in gone.script


# --- the backends with their tools ------------------------------------------------------

class FakeTools:
    """run_command/get_bin_path stand-ins that record calls and answer from a table."""

    def __init__(self, answers=None, missing=()):
        self.calls = []
        self.answers = answers or {}
        self.missing = set(missing)

    def which(self, tool):
        return None if tool in self.missing else f"/usr/sbin/{tool}"

    def run_command(self, argv, data=None, binary_data=False, environ_update=None):
        self.calls.append((argv, data))
        tool = argv[argv.index("--") + 1] if "--" in argv else argv[0]
        answer = self.answers.get(tool.rsplit("/", 1)[-1], (0, "", ""))
        return answer(argv) if callable(answer) else answer

    def runner(self, netns=None):
        return command.Runner(self.run_command, self.which, netns)


def test_reading_runs_inside_the_netns():
    tools = FakeTools({"nft": (0, NFT_JSON, ""), "iptables-save": (0, IPTABLES_SAVE, "")})
    assert pr.NftablesPolicy(tools.runner("pod")).read().lines == NFT.render(pods()).lines
    assert pr.IptablesPolicy(tools.runner("pod")).read().lines == IPT.render(pods()).lines
    assert [argv for argv, _data in tools.calls] == [
        ["/usr/sbin/nsenter", "--net=/run/netns/pod", "--", "/usr/sbin/nft", "-j", "list", "table", "inet",
         "handcni-policy"],
        ["/usr/sbin/nsenter", "--net=/run/netns/pod", "--", "/usr/sbin/iptables-save", "-t", "filter"]]


def test_nft_read_missing_table_and_other_errors():
    missing = FakeTools({"nft": (1, "", "Error: No such file or directory\nlist table inet handcni-policy\n")})
    assert pr.NftablesPolicy(missing.runner()).read().lines == []
    broken = FakeTools({"nft": (1, "", "Error: Operation not permitted\n")})
    with pytest.raises(command.CommandError, match="Operation not permitted"):
        pr.NftablesPolicy(broken.runner()).read()


def test_probes():
    assert NFT.probe(NFT.render(pods()).detail) == ["nft", "list", "chain", "inet", "handcni-policy", "forward"]
    assert IPT.probe(IPT.render(pods()).detail) == [
        "iptables", "-w", "-t", "filter", "-C", "FORWARD", "-m", "comment", "--comment", "handcni.podnet",
        "-j", "HANDCNI-POLICY"]
    assert NFT.probe(NFT.render(()).detail) is None and IPT.probe(IPT.render(()).detail) is None


def test_iptables_apply_removes_the_filter_table_it_made(tmp_path, monkeypatch):
    """With iptables-nft our first write makes `table ip filter`; a mark says so, and the last removal
    deletes the table again when nothing else is in it."""
    monkeypatch.setattr(ipt, "IPT_MADE_DIR", str(tmp_path / "made"))
    empty = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
    tools = FakeTools({"iptables": (0, "iptables v1.8.9 (nf_tables)", ""), "nft": lambda argv: (1, "", "No such file") if "list" in argv else (0, "", ""),
                       "iptables-save": (0, empty, "")})
    backend = pr.IptablesPolicy(tools.runner())
    backend.apply(backend.plan(backend.parse(empty), pods()))
    assert (tmp_path / "made" / "iptables-filter-made._host").exists()
    backend.apply(backend.plan(backend.parse(IPTABLES_SAVE), ()))
    assert ["/usr/sbin/nft", "delete", "table", "ip", "filter"] in [argv for argv, _data in tools.calls]
    assert not (tmp_path / "made").exists()
