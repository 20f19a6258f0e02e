"""Optimisation: search passes x backends x precision for the fastest model that passes the accuracy gate."""
