"""What an operator does to run the gateway for real: check the configuration, back up and restore."""
