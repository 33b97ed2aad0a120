"""Voice: the agent's vetted callback numbers, the nailed-up callback leg per home session, and call events."""
