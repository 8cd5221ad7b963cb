"""Shared pytest fixtures for gsmgw."""
