"""Use cases: each takes its collaborators (database, gateway, dispatcher, clock) as arguments."""
