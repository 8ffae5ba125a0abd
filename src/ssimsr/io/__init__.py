"""Writing outputs safely: under a temporary name, renamed when complete."""
