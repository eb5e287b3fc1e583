"""Dataset writers: Replicator BasicWriter layout (``basic``) and COCO instances (``coco``)."""
