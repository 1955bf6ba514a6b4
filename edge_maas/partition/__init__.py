"""Cut a graph into shards at tensor boundaries."""

from edge_maas.partition.costs import op_macs
from edge_maas.partition.plan import CutPlan, ShardSpec, plan_at_tensors, plan_balanced, plan_every_op
from edge_maas.partition.split import split_model

__all__ = ["CutPlan", "ShardSpec", "op_macs", "plan_at_tensors", "plan_balanced", "plan_every_op", "split_model"]
