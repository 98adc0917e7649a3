"""Passes that rewrite exporters' spellings into the plain form the rules read, before the plan.

- ``as_strided`` as the dynamo exporter writes it for a strided view that is the tensor itself
  (ConvNeXt's head): ``Reshape(x, [-1])`` → ``Gather(axis=0, indices)`` with indices computed from
  the batch size. Where the indices, computed by onnxruntime at the canonical size for batches of
  one and two images, are ``arange(x.size).reshape(x.shape)``, the ``Gather`` reads every value
  where it lies: it becomes ``Identity(x)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .graph import OnnxGraph

__all__ = ["identity_gathers"]


def _strided_views(graph: OnnxGraph) -> list[tuple[Any, str]]:
    """The Gather nodes that read a 1-D Reshape of a tensor, with that tensor."""
    found = []
    for node in graph.model.graph.node:
        if node.op_type != "Gather" or int(_axis(node)) != 0:
            continue
        reshape = graph.producer.get(node.input[0])
        if reshape is None or reshape.op_type != "Reshape":
            continue
        target = graph.constant(reshape.input[1])
        if target is not None and target.reshape(-1).tolist() == [-1]:
            found.append((node, str(reshape.input[0])))
    return found


def _axis(node: Any) -> int:
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == "axis"), 0)


def identity_gathers(graph: OnnxGraph, image: str, shape: list[int]) -> int:
    """Replace the identity ``as_strided`` gathers of ``graph`` (its image input ``image``, the
    canonical input ``shape``) by ``Identity``; returns how many."""
    candidates = _strided_views(graph)
    if not candidates:
        return 0
    import onnx
    from onnx import helper

    from ..runtime import open_session

    names = [name for node, source in candidates for name in (node.input[1], source)]
    probe = onnx.ModelProto()
    probe.CopyFrom(graph.model)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names)
    try:
        session = open_session(probe.SerializeToString(), optimization="basic")
        runs = [
            session.run(names, {image: np.zeros([batch, *shape[1:]], np.float32)})
            for batch in (1, 2)
        ]
    except Exception:  # the rules will refuse what stays
        return 0
    replaced = 0
    for index, (node, source) in enumerate(candidates):
        if all(
            np.array_equal(
                values[2 * index],
                np.arange(values[2 * index + 1].size).reshape(values[2 * index + 1].shape),
            )
            for values in runs
        ):
            identity = helper.make_node("Identity", [source], list(node.output), name=node.name)
            node.CopyFrom(identity)
            replaced += 1
    if replaced:
        graph.index_producers()
    return replaced
