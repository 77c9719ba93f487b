"""The network in front of the simulator: toxiproxy's TCP toxics on a timeline, and the namespace lab."""
