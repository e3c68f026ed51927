"""Replication: change logs, shipping, replica stores, recovery points."""
