## core tests: objects, weak refs, executor (Check suites + stress)
