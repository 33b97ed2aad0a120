"""The policy in force: versions stored in the database, every change validated first and audited."""
