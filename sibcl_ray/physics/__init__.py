"""Physics of the two problems: input generators and label solvers.

Pure NumPy/SciPy. Nothing here imports Ray or torch, so labels can be computed,
tested and benchmarked without the learning stack (pdearena-style separation of
data generation from learning).
"""
