"""Reliability drills for the coach: faults, restarts, hostile input, access control."""
