"""Real datasets: the 11 MTIL datasets read from disk, lazily, as ordinary clviz tasks."""
