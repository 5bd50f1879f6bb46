"""The pipeline under optimization: planner → producer → evaluator, run over a task suite."""
