# Salt's own floor for the no-op benchmarks (benchmarks/noop.py, benchmarks/fleet.py):
# the same salt-call applying one state that does nothing.
floor:
  test.nop: []
