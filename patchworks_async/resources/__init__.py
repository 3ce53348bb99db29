"""One module per API resource; each is a thin layer over ``PatchworksClient._call``."""
