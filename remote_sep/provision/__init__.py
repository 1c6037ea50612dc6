"""Bootstrap a GPU host: inspect, choose the torch wheels, install, token, gated check, stamp.

Other commands use `ensure_provisioned(host, profile)` and `venv_python(profile.path)`.
"""

from remote_sep.provision.plan import venv_python
from remote_sep.provision.stamp import ensure_provisioned

__all__ = ["ensure_provisioned", "venv_python"]
