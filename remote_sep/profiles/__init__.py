"""Host profiles: hosts.yaml schema, loading with the ssh_config merge, the `hosts add` writer.

The package's public names, so callers need one import (`from remote_sep import profiles`).
"""

from remote_sep.profiles.load import (
    build_profile,
    default_hosts_path,
    default_known_hosts,
    get_profile,
    hosts_path,
    load_hosts,
    load_ssh_config,
    ssh_config_aliases,
)
from remote_sep.profiles.target import parse_target
from remote_sep.profiles.writer import add_host, write_entry

__all__ = [
    "add_host",
    "build_profile",
    "default_hosts_path",
    "default_known_hosts",
    "get_profile",
    "hosts_path",
    "load_hosts",
    "load_ssh_config",
    "parse_target",
    "ssh_config_aliases",
    "write_entry",
]
