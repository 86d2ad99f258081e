"""kartapos."""
