"""Network zoo: encoders, heads and normalisers. Plain constructor args, never a config object."""
