"""Connection handlers: h11 for HTTP/1.1, h2 for HTTP/2, TLS and protocol sniffing in front."""
