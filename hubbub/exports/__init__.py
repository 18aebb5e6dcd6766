"""Exports: files a job writes for a tenant, served through signed, expiring links."""
