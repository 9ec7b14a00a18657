"""Network plumbing: listeners and admission, port owners, interface addresses, mDNS."""
