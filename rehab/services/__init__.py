"""Use cases: each function takes a session and an `Actor`, checks access, audits, works."""
