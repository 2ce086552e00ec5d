"""The golden model: the hardware's exact integer arithmetic, stage by stage, in numpy."""
