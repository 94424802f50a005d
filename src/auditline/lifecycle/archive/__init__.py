"""Archival of old events to cold storage as Parquet (zstd), and their restore.

``service`` runs it (archive, list, verify, export, restore), ``parquet`` is the file
format, ``manifest`` the manifest and the layout in the store, ``store`` the cold-storage
backends (a directory, S3). docs/operations.md ("Archival") is the operator's guide.
"""
