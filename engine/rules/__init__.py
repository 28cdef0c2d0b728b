"""The safety rules, as small pure functions over one pass's facts and one scan's.

`engine/planner.py` runs them per scan; each module here states its rule in its docstring.
"""
