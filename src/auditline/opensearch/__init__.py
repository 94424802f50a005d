"""The OpenSearch search tier: a second implementation of the search backend protocols.

PostgreSQL stays the source of truth; these indices are derived from it (by the indexing
task, which follows each tenant's ``seq``) and can be dropped and rebuilt at any time.
``documents`` (index names, the template with its explicit mappings, events to documents
and back), ``compiler`` (filters and query-language ASTs to the query DSL, the tenant
filter included), ``client`` (the async client, bulk writes, deletions) and ``backend``
(``SearchBackend`` over the read alias). Nothing here reads PostgreSQL: this layer sits
beside ``storage/``, and what joins the two lives above both.
"""
