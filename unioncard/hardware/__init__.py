"""Device adapters chosen by a config string: cups:, file:, pcsc:, serial:, sim: (issues #5, #6)."""
