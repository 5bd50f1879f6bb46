"""The optimization loop: the Study, its proposals, crash recovery, and studies shared by several workers."""
