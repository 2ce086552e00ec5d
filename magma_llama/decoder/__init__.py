"""The whole decoder: weight port, controller, top level, simulation harness."""
