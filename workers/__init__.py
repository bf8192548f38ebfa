"""Dramatiq side of billing: broker set-up, actors, worker and scheduler entry points."""
