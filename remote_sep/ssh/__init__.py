"""The one SSH seam (paramiko): ssh_config, dialing with host-key checks, SSHHost, SFTP transfers.

Import the modules themselves (`remote_sep.ssh.host`): this package file stays empty so that
importing one module of it never loads the SSH stack for callers that only need another.
"""
