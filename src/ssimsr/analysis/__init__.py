"""Statistics: comparing loss variants, the noise model of the verdict, its power and the
simulations that check it (the ``stats`` rule)."""
