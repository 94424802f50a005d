"""The PostgreSQL search backend: search, export, counts and statistics over ``events``.

``backend`` implements the ``search.backend`` protocols on a pool; the rest is the SQL,
split by concern: ``compiler`` (filters and query ASTs to conditions, the explicit tenant
condition included), ``pages`` (the plans for pages, export lines and counts), ``rows``
(projections and fast decoding), ``lines`` (export lines encoded by PostgreSQL) and
``stats`` (statistics from events and hourly rollups).
"""
