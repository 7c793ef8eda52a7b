"""Small shared helpers: logging setup, seeding."""
