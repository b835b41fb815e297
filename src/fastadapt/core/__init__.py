"""Types, protocols, seeding, registry and errors shared by every other layer."""
