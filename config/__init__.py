"""Typed configuration: schema, loader, logging setup."""
