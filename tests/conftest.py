"""Shared pytest configuration for every test package (each subpackage has its own fixtures)."""
