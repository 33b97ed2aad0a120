"""Background work in one shape: every worker reads the desired state from the database, observes the world and
applies the difference outside any transaction, woken by nudges and by its safety-net interval (``contract.py``);
one runner starts, nudges and stops them all (``runner.py``)."""
