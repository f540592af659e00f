"""Source and sink adapters, one module per database, behind the narrow interfaces in :mod:`.base`."""
