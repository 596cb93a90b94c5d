"""The issuing authority's side: publishing bundles, issuing DCCs and health codes, the
record key.  The device (verify, decide, act) never imports this package; a test imports
every device module with it blocked (``tests/test_authority_apart.py``)."""
