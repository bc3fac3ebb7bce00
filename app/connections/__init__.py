"""The connection log: the edge's JSON access log tailed into sessions, last activity and idle stop."""
