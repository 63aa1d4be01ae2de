"""dynofa_ros: Dynamic-OFA networks and runtime resource management for ROS 2.

The generated message modules (``dynofa_ros.msg``) may live in another directory
of the same package name (the ROS install prefix or the project venv); extending
``__path__`` lets both halves import as one package.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"
