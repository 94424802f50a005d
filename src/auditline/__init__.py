"""Auditline: a self-hosted, multi-tenant, tamper-evident audit log service."""

__version__ = "0.1.0"
