"""Live streams of a tenant's events: one listener per process, fan-out by tenant and seq."""
