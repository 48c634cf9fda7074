"""Cluster: joining Ray, planning actor pools from its resources, TensorFlow devices, Ray Jobs."""
