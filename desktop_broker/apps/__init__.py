"""Applications published on kiosk seats. Standard library only: they run under the system Python as the
seat user, outside the gateway's virtual environment."""
