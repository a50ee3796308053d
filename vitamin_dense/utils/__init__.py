"""Small shared helpers (CLI behaviour, image I/O)."""
