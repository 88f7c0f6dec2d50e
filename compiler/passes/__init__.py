"""Optimization passes and the manager that runs them."""
