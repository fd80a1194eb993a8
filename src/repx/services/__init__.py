"""Orchestration: each service is one user-level action, free of CLI concerns."""
