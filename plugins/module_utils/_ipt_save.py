# Copyright: handcni.podnet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iptables-save text: its tokens and quoting, and what of one table is ours (IptState). Private to this
collection; the iptables backend (_iptables.py) reads and writes through it."""
from __future__ import annotations

import re
import shlex
from typing import NamedTuple

from ._netlink import OWNER

IPT_TABLE = "nat"
IPT_PREFIX = "HANDCNI-"
_IPT_BARE = re.compile(r"^[A-Za-z0-9_.:/=@%,+!\[\]-]+$")  # [fd00::1]:80 as ip6tables-save prints it

# --- iptables-save text -------------------------------------------------------

# A token of iptables-save: a "quoted string" (backslash escapes) or a bare word, then a blank or the end.
_IPT_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"\'\\]+))(?=\s|$)')
_IPT_UNESCAPE = re.compile(r'\\([\\"$`])')


_IPT_QUOTED: dict = {}  # token -> as written in a line; the same few tokens come back thousands of times


def ipt_quote(token: str) -> str:
    quoted = _IPT_QUOTED.get(token)
    if quoted is None:
        quoted = token if _IPT_BARE.fullmatch(token) else \
            '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(_IPT_QUOTED) < 100000:
            _IPT_QUOTED[token] = quoted
    return quoted


def ipt_line(tokens) -> str:
    return " ".join(map(ipt_quote, tokens))


def _ipt_split(line: str) -> list | None:
    """Split as shlex does, fast for what iptables-save prints; None when it is not that simple."""
    if "\\" not in line and "'" not in line:
        parts = line.split('"')
        if len(parts) == 1:
            return line.split()
        # one quoted word (a rule comment), standing alone between blanks
        if len(parts) == 3 and (not parts[0] or parts[0][-1] in " \t") and (not parts[2] or parts[2][0] in " \t"):
            return parts[0].split() + [parts[1]] + parts[2].split()
    tokens, pos, text = [], 0, line.rstrip()
    while pos < len(text):
        match = _IPT_TOKEN.match(text, pos)
        if match is None:
            return None
        quoted, bare = match.groups()
        tokens.append(bare if bare is not None else _IPT_UNESCAPE.sub(r"\1", quoted))
        pos = match.end()
    return tokens


def ipt_tokens(line: str) -> tuple | None:
    """A rule line of iptables-save as tokens ([counters] dropped); None if it does not split."""
    tokens = _ipt_split(line)
    if tokens is None:
        try:
            tokens = shlex.split(line)
        except ValueError:
            return None
    if tokens and re.fullmatch(r"\[\d+:\d+\]", tokens[0]):
        tokens = tokens[1:]
    return tuple(tokens)


def ipt_comment(tokens: tuple) -> str | None:
    for index, token in enumerate(tokens[:-1]):
        if token == "--comment":
            return tokens[index + 1]
    return None


def is_ours(comment: str | None) -> bool:
    return comment is not None and (comment == OWNER or comment.startswith(OWNER + " "))


class IptState(NamedTuple):
    """Our chains (name -> rule token tuples, in order) and our rules in other chains: the jumps into ours.
    `others`: how many chains of others the table held when read (None: not read, but drawn or recorded)."""
    chains: dict
    jumps: list
    others: int | None = None

    def holds_ours(self) -> bool:
        return bool(self.chains or self.jumps)

    def same(self, other: "IptState") -> bool:
        """The same rules of ours as `other` (what equal lines() would say, without making them)."""
        return self.chains == other.chains and sorted(self.jumps) == sorted(other.jumps)

    def lines(self) -> list:
        out = [f":{name} - [0:0]" for name in sorted(self.chains)]
        out += sorted(ipt_line(jump) for jump in self.jumps)
        for name in sorted(self.chains):
            out += [ipt_line(rule) for rule in self.chains[name]]
        return out


def parse_iptables_save(text: str, table: str = IPT_TABLE) -> IptState:
    """Our part of one table in `iptables-save` output; every other line is ignored."""
    chains, jumps, current, others = {}, [], None, 0
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            current = line[1:]
            continue
        if current != table or not line or line.startswith("#"):
            continue
        if line.startswith(":"):
            name = line[1:].split()[0]
            if name.startswith(IPT_PREFIX):
                chains.setdefault(name, [])
            else:
                others += 1
            continue
        tokens = ipt_tokens(line)
        if line.startswith("-A ") and tokens is None:
            chain = line.split()[1]
            if chain.startswith(IPT_PREFIX):  # ours, but mangled: keep it visible, it never matches
                chains.setdefault(chain, []).append(("-A", chain, "#unparsable", line))
            continue
        if not tokens or tokens[0] != "-A" or len(tokens) < 2:
            continue
        if tokens[1].startswith(IPT_PREFIX):
            chains.setdefault(tokens[1], []).append(tokens)
        elif is_ours(ipt_comment(tokens)):
            jumps.append(tokens)
    return IptState(chains, jumps, others)
