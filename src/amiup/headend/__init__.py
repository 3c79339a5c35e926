"""Head-end delivery (sans-I/O): per-meter sessions, multicast + repair, traffic control, models."""
