"""kube package: kubernetes nodes (render, apply, Jobs, followers)."""

# Set in the node's own pods: tells the CLI there that it *is* this node (and runs locally).
# Here, not in kube.node, so that the CLI reads it without importing the kube modules.
NODE_ENV = "GIT_MIRROR_IN_NODE"
