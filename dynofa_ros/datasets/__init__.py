"""Datasets as decoded uint8 arrays, without torch: image files and ImageFolder trees, CIFAR-10 in its formats,
the shipped CIFAR-10 test set. Used by the camera node, the demo and the offline stage."""
