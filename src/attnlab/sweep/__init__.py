"""Run identity, the result store and (later) grid expansion and executors."""
