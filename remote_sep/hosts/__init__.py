"""What every host is, SSH or not: Host protocol, HostProfile, LocalHost, shell, known_hosts."""
