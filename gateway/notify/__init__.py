"""Messages to people outside the portal: SMS today (number confirmation, supervision alerts)."""
