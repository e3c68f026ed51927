"""srlab's user interfaces: the Textual app and the `srlab` command line. Both call engine.Lab only."""
