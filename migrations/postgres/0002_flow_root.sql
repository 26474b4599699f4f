-- Flows: the root of the flow an execution belongs to (its parent's root, or
-- its parent when the parent is a root); NULL for a root itself. Every member
-- of a flow lives in its root's partition.
ALTER TABLE executions ADD COLUMN root text;
