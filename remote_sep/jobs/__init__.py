"""One remote job: layout on the host, payload sync, following, separate/attach, records, clean."""
