"""Partners (a credit cooperative, a bonus programme) checking that a card is a valid union card
of the person in front of them, and learning nothing else."""
