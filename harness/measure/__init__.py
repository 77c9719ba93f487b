"""Measuring: metrics from trial records, retry strategies as data, and the load generator the studies use."""
