"""Tenancy: which tenant work acts on (``scope``) and the tenant operations (``service``).

The tenant model and its errors are plain domain types (``domain.tenants``): storage
returns them and sits below this package.
"""
