"""The CNI protocol for the cni tests: a lab node that can run a conflist as a container runtime does."""
import json

from lab import WORKERS, Node, playbook  # noqa: F401  (re-exported for the tests)

CONFLIST = "/etc/cni/net.d/10-handcni.conflist"
CNI_PATH = "/usr/lib/cni"  # Debian's containernetworking-plugins


class CniNode(Node):
    """A lab node that can also run a CNI conflist as a container runtime does."""

    def conflist(self) -> dict:
        return json.loads(self.run("cat", CONFLIST).stdout)

    def cni(self, command: str, conflist: dict, container: str, netns: str, ifname: str = "eth0",
            add_result: dict | None = None) -> dict:
        """Run a conflist as libcni does: plugin by plugin (DEL in reverse), each one fed its own
        config from the list with the list's name and cniVersion (and prevResult) added."""
        plugins = conflist["plugins"] if command == "ADD" else list(reversed(conflist["plugins"]))
        result = add_result
        for plugin in plugins:
            config = dict(plugin, name=conflist["name"], cniVersion=conflist["cniVersion"])
            if result is not None:
                config["prevResult"] = result
            env = ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", f"CNI_COMMAND={command}",
                   f"CNI_CONTAINERID={container}", f"CNI_NETNS={netns}", f"CNI_IFNAME={ifname}",
                   f"CNI_PATH={CNI_PATH}"]
            run = self.stdin([*env, f"{CNI_PATH}/{plugin['type']}"], json.dumps(config))
            assert run.returncode == 0, f"{plugin['type']} {command} on {self.name}: {run.stdout}{run.stderr}"
            if command == "ADD":
                result = json.loads(run.stdout)
        return result
