"""Drives clients through scenarios against the simulator and measures how they recover."""
