"""The dashboard: HTML pages whose scripts read the same HTTP API any caller can, with a bearer token."""
